"""Checks that import and run the student's own Python file, run in a child process.

The student's service imports torch and timm, and loading it builds TinyViT: about 0.8 GB that
would stay in the notebook's kernel for the rest of the session if the check ran there. In a
child, the kernel stays light, a fresh interpreter imports the file as MLServer would, and
nothing the file does (threads, patched modules, a ``sys.exit``) reaches the kernel.

The child prints the check's lines as the kernel would (they are shown under the cell) and
sends back one line for the outcome; a :class:`CheckFailed` is raised again in the kernel with
the same text and hint. Run with ``LAB_CHECK_IN_PROCESS=1`` in the environment, the check runs
in this process (the child itself, and tests of a check's feedback).

A check asked again with the same arguments about the same files (the student's folder and
the checkpoint, byte for byte) shows its first answer again without a second child: the
check that runs when ``%%writefile`` writes the file and the graded cell after it ask the same
question, and the graded cell usually runs beside the student's server, where a second
TinyViT in a child would take the notebook over its memory budget. A changed file, another
checkpoint or a new kernel asks again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

from labkit import config
from labkit.checks.feedback import CheckFailed

OUTCOME = "\x1elabkit-check-outcome "  # after a record separator, which no printed text holds
CHILD = "import sys; from labkit.checks.isolated import main; sys.exit(main())"
TIMEOUT = 300  # seconds: loading TinyViT and three calls take about 10


class ChildCrashed(RuntimeError):
    """The check's own code failed in the child (a bug of the lab, not a student's mistake)."""


# What each child answered, by the question and the files it read: (printed lines, outcome).
ANSWERS: dict[str, tuple[list[str], dict]] = {}


def in_child(check: Callable[..., None]) -> Callable[..., None]:
    """``check`` (whose arguments are paths and strings) run in a child Python process."""

    @functools.wraps(check)
    def run(*args: object, **kwargs: object) -> None:
        if config.checks_in_process():
            return check(*args, **kwargs)
        call = {"module": check.__module__, "name": check.__name__, "args": [_plain(value) for value in args],
                "kwargs": {key: _plain(value) for key, value in kwargs.items()}}
        question = _fingerprint(check, args, kwargs)
        if question in ANSWERS:
            printed, outcome = ANSWERS[question]
            for line in printed:
                print(line)
            return _answer(check, outcome)
        package_root = str(Path(__file__).resolve().parents[2])  # labkit's folder, installed or not
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        try:
            done = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(call),
                                  capture_output=True, text=True, timeout=TIMEOUT,
                                  env={**os.environ, config.CHECK_IN_PROCESS: "1", "PYTHONPATH": path})
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"Your code did not finish within {TIMEOUT} seconds: load() or predict() does not "
                              "return.", "Look for a loop that never ends, or code that waits for input.") from None
        outcomes, lines = [], []
        for line in done.stdout.split("\n"):  # not splitlines(): it splits at the separator too
            text, _, answer = line.partition(OUTCOME)
            if text:
                print(text)
                lines.append(text)
            if answer:
                outcomes.append(answer)
        if not outcomes:  # only the student's code runs there besides the check: it ended the process
            last = (done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
            raise CheckFailed(f"Python stopped (exit code {done.returncode}) while the check ran your code, before "
                              f"it could answer: {last}",
                              "MLServer imports your file and calls load() and predict() in its own process: "
                              "nothing in them may end that process.")
        outcome = json.loads(outcomes[-1])
        if not outcome.get("error"):  # a bug of the check is not an answer to keep
            ANSWERS[question] = (lines, outcome)
        return _answer(check, outcome)

    return run


def _answer(check: Callable[..., None], outcome: dict) -> None:
    if outcome["failed"]:
        raise CheckFailed(outcome["what"], outcome["hint"])
    if outcome.get("error"):
        raise ChildCrashed(f"The check {check.__name__} itself failed:\n{outcome['error']}")


def _fingerprint(check: Callable[..., None], args: tuple, kwargs: dict) -> str:
    """The question (the check and its arguments, defaults filled in, paths made absolute, so
    that ``metric_file(folder)`` and ``metric_file(folder, metric, checkpoint=...)`` are one
    question) and every file it can read: each folder among the arguments (its files' bytes;
    big ones, such as the checkpoint, by size and modification time) and each file."""
    bound = inspect.signature(check).bind(*args, **kwargs)
    bound.apply_defaults()
    values = {name: _plain(value) for name, value in bound.arguments.items()}
    paths = {name: Path(value).resolve() for name, value in values.items()
             if isinstance(value, str) and value and Path(value).exists()}
    values.update({name: str(path) for name, path in paths.items()})
    digest = hashlib.sha256(json.dumps([check.__module__, check.__name__, values], sort_keys=True).encode())
    for path in paths.values():
        files = sorted(_files_under(path)) if path.is_dir() else [path] if path.is_file() else []
        for file in files:
            stat = file.stat()  # through a link: the checkpoint it points at
            digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
            if stat.st_size < 1_000_000:
                digest.update(file.read_bytes())
    return digest.hexdigest()


def _files_under(folder: Path) -> Iterator[Path]:
    for root, folders, names in os.walk(folder, followlinks=False):
        folders[:] = [name for name in folders if not name.startswith(".") and name != "__pycache__"]
        for name in names:
            if (Path(root) / name).is_file():
                yield Path(root) / name


def _plain(value: object) -> object:
    """A path as its text (the child runs in the same working folder, so relative paths hold)."""
    return str(value) if isinstance(value, Path) else value


def main() -> int:
    call = json.loads(sys.stdin.read())
    check = getattr(importlib.import_module(call["module"]), call["name"])
    try:
        check(*call["args"], **call["kwargs"])
        outcome: dict[str, object] = {"failed": False}
    except CheckFailed as failure:
        outcome = {"failed": True, "what": failure.what, "hint": failure.hint}
    except SystemExit as stop:
        outcome = {"failed": True, "what": f"Your code called exit ({stop.code!r}) while the check ran it.",
                   "hint": "MLServer imports your file and calls load() and predict() in its own process: "
                           "nothing in them may end that process."}
    except BaseException:  # a bug of the check, not a student's mistake: the kernel shows it
        import traceback

        outcome = {"failed": False, "error": traceback.format_exc()}
    sys.stdout.flush()
    # The student's code may have replaced sys.stdout; the outcome goes to the real one.
    assert sys.__stdout__ is not None  # the parent reads it through a pipe
    sys.__stdout__.write(f"{OUTCOME}{json.dumps(outcome)}\n")
    sys.__stdout__.flush()
    return 0
