"""The checks' feedback is tested in this process (``LAB_CHECK_IN_PROCESS``): a child per call
would cost seconds each for the same code. ``test_isolated.py`` tests the child itself."""

import pytest

from labkit import config


@pytest.fixture(autouse=True)
def checks_in_process(monkeypatch):
    monkeypatch.setenv(config.CHECK_IN_PROCESS, "1")
