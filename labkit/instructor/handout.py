"""The student hand-out: what an instructor gives to students.

``python -m labkit handout [folder]`` (``make handout``) writes ``<folder>/mlserver-lab/``
and ``<folder>/mlserver-lab.tar.gz``: the student notebooks, the service folder, images,
environment files, the helper package and a student README, with ``tools/lab.mk`` as its
Makefile (``make lab``). It leaves out everything that gives answers away: solution
notebooks, notebook sources, the hidden checks, and the instructor's build and grading
code. ``make grade`` runs on the instructor's side, where those are.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
from pathlib import Path

from labkit.paths import REPO_ROOT, PathLike

NAME = "mlserver-lab"
# Copied as they are (folders recursively), from the repository into the hand-out.
SHARED = ["tinyvit", "imgs", "runtimes", "deploy", "monitoring", "tools/jupyter", "labkit",
          "benchmarks/results", "requirements.txt", "pyproject.toml", "env.yaml"]
# Repository file -> its name in the hand-out.
RENAMED = {"tools/lab.mk": "Makefile", "docs/handout-README.md": "README.md"}
# The instructor's folder: the hidden checks, building/releasing notebooks, grading, this module.
INSTRUCTOR_ONLY = ["labkit/instructor"]
# Files that answer an exercise: the lab's own pinned requirements are notebook 06's Exercise 1.
ANSWER_FILES = ["tinyvit/requirements.txt"]
# Text that only solution notebooks, their sources or hidden tests contain.
ANSWER_MARKERS = ["### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "hidden_checks", "NBVAL_"]
# The records of test runs and of grading a class are the instructor's, not a student's.
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "test-runs", "grading-*")
MARKER_FILE = ".mlserver-lab-handout"  # a folder with it is ours to replace


def build(destination: PathLike = REPO_ROOT / "handout") -> Path:
    """Write the hand-out folder and its archive into ``destination``; return the archive."""
    destination = Path(destination)
    folder = destination / NAME
    _clear(folder)
    folder.mkdir(parents=True)
    (folder / MARKER_FILE).write_text("written by `make handout`; replaced by the next one\n")
    notebooks = folder / "notebooks"
    notebooks.mkdir()
    for notebook in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, notebooks / notebook.name)
    for name in SHARED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=SKIPPED)
        else:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    for original, target in RENAMED.items():
        shutil.copy2(REPO_ROOT / original, folder / target)
    for name in INSTRUCTOR_ONLY:
        shutil.rmtree(folder / name)
    for name in ANSWER_FILES:
        (folder / name).unlink(missing_ok=True)
    leaks = answer_leaks(folder)
    if leaks:
        shutil.rmtree(folder)
        raise RuntimeError(f"the hand-out would give answers away ({', '.join(leaks)}); nothing written")
    archive = destination / f"{NAME}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=NAME, filter=_anonymous)
    return archive


def answer_leaks(folder: Path) -> list[str]:
    """Files of ``folder`` that hold solution or hidden-test text, or instructor-only modules."""
    leaks = [name for name in INSTRUCTOR_ONLY + ANSWER_FILES if (folder / name).exists()]
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".ipynb", ".md", ".json", ".txt"):
            text = path.read_text(errors="replace")
            leaks += [f"{path.relative_to(folder)} ({marker})" for marker in ANSWER_MARKERS if marker in text]
    return leaks


def _clear(folder: Path) -> None:
    if not folder.exists():
        return
    if not (folder / MARKER_FILE).is_file():
        raise FileExistsError(f"{folder} exists and is not a hand-out this command wrote; "
                              "choose another folder")
    shutil.rmtree(folder)


def _anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    # The instructor's user and group names mean nothing on a student's machine.
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit handout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("destination", nargs="?", default=str(REPO_ROOT / "handout"))
    archive = build(parser.parse_args(argv).destination)
    print(f"wrote {archive.parent / NAME}/ and {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
