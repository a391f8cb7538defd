"""The checks' feedback is tested in this process (``LAB_CHECK_IN_PROCESS``): a child per call
would cost seconds each for the same code. ``test_isolated.py`` tests the child itself."""

import pytest

from labkit import config
from labkit.workspace import service_folder
from tests.helpers.solutions import solution_cell, written


@pytest.fixture(autouse=True)
def checks_in_process(monkeypatch):
    monkeypatch.setenv(config.CHECK_IN_PROCESS, "1")


@pytest.fixture
def folder(tmp_path, checkpoint):
    """Notebook 01's folder with the solution's three files."""
    folder = service_folder(tmp_path / "my-tinyvit", checkpoint=checkpoint)
    for grade_id, name in (("model-settings", "model-settings.json"), ("server-settings", "settings.json"),
                           ("first-service", "serve-model.py")):
        (folder / name).write_text(written(solution_cell("01_first_service.ipynb", grade_id)))
    return folder


@pytest.fixture
def shipped(tmp_path):
    """Notebook 06's shipped/ with the solution's requirements.txt."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "requirements.txt").write_text(written(solution_cell("06_packaging.ipynb", "requirements")))
    return folder
