"""The %%writefile hook (labkit.checks.on_write), in an IPython shell in process: the check of
each file right after its cell, and none of the service's smoke call while grading (the graded
cells run the service; no point depends on the smoke call)."""

import pytest
from IPython.core.interactiveshell import InteractiveShell

from labkit.checks import check_each_write


@pytest.fixture
def shell():
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


def write(shell, path, body):
    return shell.run_cell(f"%%writefile {path}\n{body}\n")


@pytest.mark.parametrize("grading", [False, True])
def test_a_service_file_is_checked_when_written_at_home_and_left_to_the_graded_cells_when_grading(
        shell, tmp_path, monkeypatch, capsys, grading):
    if grading:
        monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    else:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    checked = []
    check_each_write(tmp_path, service_check=checked.append)
    write(shell, tmp_path / "serve-model.py", "x = 1")
    out = capsys.readouterr().out
    assert checked == ([] if grading else [tmp_path.resolve()])
    assert ("checked by the graded cells below" in out) == grading
    assert ("in a Python process of its own (about 10 s" in out) != grading  # no silent wait at home
    # A settings file is checked either way (in milliseconds).
    write(shell, tmp_path / "settings.json", '{"parallel_workers": 0,}')
    assert "trailing comma" in capsys.readouterr().out
