"""The checks that import the student's file run in a child process: the kernel keeps no
torch, the student sees the same lines and the same feedback, and a file that never returns
or kills its process gets feedback, not a hung or broken kernel."""

import subprocess
import sys
import time

import pytest

from labkit import checks, config
from labkit.checks import isolated, student_code
from labkit.workspace import service_folder
from tests.helpers.solutions import solution_cell, written

pytestmark = pytest.mark.slow  # a child process per call, each importing torch


@pytest.fixture(autouse=True)
def in_a_child(monkeypatch):
    monkeypatch.delenv(config.CHECK_IN_PROCESS, raising=False)
    monkeypatch.setattr(isolated, "ANSWERS", {})


@pytest.fixture
def folder(tmp_path, checkpoint):
    folder = service_folder(tmp_path / "my-tinyvit", checkpoint=checkpoint)
    for grade_id, name in (("model-settings", "model-settings.json"), ("first-service", "serve-model.py")):
        (folder / name).write_text(written(solution_cell("01_first_service.ipynb", grade_id)))
    return folder


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_a_kernel_that_runs_the_service_checks_imports_no_torch(folder, checkpoint):
    code = ("import sys\nfrom labkit import checks\n"
            f"checks.model_settings({str(folder)!r})\nchecks.service({str(folder)!r}, {str(checkpoint)!r})\n"
            "print(sorted(name for name in ('torch', 'timm', 'torchvision') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "[]"
    assert sum(line.startswith("✔") for line in lines) == 2, lines


def test_the_student_sees_their_prints_and_the_same_feedback(folder, checkpoint, capsys):
    path = folder / "serve-model.py"
    edit(path, "    async def load(self", "    async def load(self")  # the file has a load() to print from
    text = path.read_text()
    body = text.index("async def load(self")
    line_end = text.index("\n", text.index(":", body)) + 1
    path.write_text(text[:line_end] + "        print('loading my model')\n" + text[line_end:])
    checks.service(folder, checkpoint)
    out = capsys.readouterr().out
    assert "loading my model" in out and "✔" in out and isolated.OUTCOME not in out

    edit(path, "import torch\n", "import torch\nimport no_such_module\n")
    failed = r"Importing serve-model.py failed on line \d+ \(import no_such_module\): ModuleNotFoundError"
    with pytest.raises(checks.CheckFailed, match=failed) as failure:
        checks.service(folder, checkpoint)
    assert failure.value.hint == "MLServer imports the file the same way; check the import lines."


def test_a_file_that_never_returns_is_stopped_with_feedback(folder, checkpoint, monkeypatch):
    monkeypatch.setattr(isolated, "TIMEOUT", 20)
    edit(folder / "serve-model.py", "import torch\n", "import torch\nimport time\nwhile True:\n    time.sleep(1)\n")
    with pytest.raises(checks.CheckFailed, match="did not finish within 20 seconds"):
        checks.service(folder, checkpoint)


def test_a_predict_that_never_returns_is_named_within_its_time_limit(folder, checkpoint, monkeypatch):
    # Before: the check waited for the child's whole timeout (300 s) and blamed load() or predict().
    monkeypatch.setattr(student_code, "TIME_LIMIT", 3.0)
    monkeypatch.setenv(config.CHECK_IN_PROCESS, "1")  # the child's code path, in this (main) thread
    edit(folder / "serve-model.py", "        batch = self.transform(Image.fromarray(payload))[None]\n",
         "        while True:  # a loop that never ends\n            pass\n")
    started = time.monotonic()
    with pytest.raises(checks.CheckFailed, match=r"predict\(\) did not return within 3 s") as failure:
        checks.service(folder, checkpoint)
    assert time.monotonic() - started < 60
    assert "loop that never ends" in failure.value.hint


@pytest.mark.parametrize("ending, message", [("import os\nos._exit(3)\n", "exit code 3"),
                                              ("import sys\nsys.exit(4)\n", r"called exit \(4\)")])
def test_a_file_that_ends_its_process_gets_feedback_and_the_kernel_survives(folder, checkpoint, ending, message):
    edit(folder / "serve-model.py", "import torch\n", "import torch\n" + ending)
    with pytest.raises(checks.CheckFailed, match=message):
        checks.service(folder, checkpoint)


def test_the_same_question_about_the_same_files_is_answered_once_and_a_changed_file_is_asked_again(
        folder, checkpoint, capsys, monkeypatch):
    # The %%writefile check and the graded cell ask the same: one child, one TinyViT.
    children = []
    real_run = subprocess.run

    def counting_run(*args, **kwargs):
        children.append(args)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(isolated.subprocess, "run", counting_run)
    checks.service(folder, checkpoint)
    first = capsys.readouterr().out
    checks.service(str(folder), checkpoint=str(checkpoint))  # the same question, written otherwise
    assert capsys.readouterr().out == first and "✔" in first
    assert len(children) == 1

    edit(folder / "serve-model.py", ".softmax(dim=-1)", "")
    for _ in range(2):
        with pytest.raises(checks.CheckFailed) as failure:
            checks.service(folder, checkpoint)
    assert len(children) == 2, "a changed file is asked again, once"
    assert "probabilit" in failure.value.what
