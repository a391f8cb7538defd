"""Build, execute and release the lab's notebooks.

The notebooks are written as plain Python files in ``notebooks/source/``
(reviewable diffs), one cell per ``# %%`` marker:

    # %% [markdown]            prose; each line starts with "# "
    # %%                       code
    # %% solution id=top5      an nbgrader solution cell (### BEGIN/END SOLUTION inside)
    # %% tests id=top5 points=3
                               an nbgrader autograded test cell worth 3 points
    # %% [markdown] answer id=why points=2
                               a written answer, graded by hand (the text is the model answer)
    # %% demo                  a demonstration: no point depends on it, so `make grade`
                               does not run it (:mod:`labkit.instructor.demonstrations`)
    # %% while grading         right after a demonstration: what runs in its place when
                               graded (the names later cells read, made without measuring);
                               not a cell of its own

``python -m labkit notebooks build`` turns them into the solution notebooks in
``notebooks/solutions/`` and executes them there, so that the committed
solutions carry the outputs nbval checks. ``python -m labkit notebooks release``
generates the student versions in ``notebooks/`` with nbgrader.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from labkit.paths import REPO_ROOT, PathLike

NOTEBOOKS = REPO_ROOT / "notebooks"
SOURCES = NOTEBOOKS / "source"
SOLUTIONS = NOTEBOOKS / "solutions"
MANIFEST_NAME = ".release-manifest.json"  # digests of what was released, per notebook
ASSIGNMENT = "mlserver-lab"
CELL_MARK = re.compile(r"^# %%(?P<rest>.*)$")


def parse_source(text: str) -> nbformat.NotebookNode:
    """A notebook from the ``# %%`` source format described above."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    header, lines = None, []
    for line in text.splitlines() + ["# %% end"]:
        match = CELL_MARK.match(line)
        if not match:
            lines.append(line)
            continue
        if header == "while grading":
            previous = notebook.cells[-1] if notebook.cells else None
            lab = previous.metadata.get("lab", {}) if previous is not None else {}
            if previous is None or not lab.get("demonstration") or lab.get("while_grading"):
                raise ValueError("'# %% while grading' must follow a '# %% demo' cell, once")
            previous.metadata["lab"]["while_grading"] = "\n".join(lines).strip("\n")
        elif header is not None:
            cell = _make_cell(header, lines)
            cell.id = f"cell-{len(notebook.cells):03d}"  # stable ids: rebuilding gives the same notebook
            notebook.cells.append(cell)
        header, lines = match.group("rest").strip(), []
    return notebook


def _make_cell(header: str, lines: list) -> nbformat.NotebookNode:
    body = "\n".join(lines).strip("\n")
    words = dict(word.split("=", 1) for word in header.split()[1:] if "=" in word)
    if header.startswith("[markdown]"):
        prose = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
        cell = nbformat.v4.new_markdown_cell(prose)
        kind = header.split()[1] if len(header.split()) > 1 else ""
        if kind == "answer":  # a written answer: the student's text, graded by hand
            cell.metadata["nbgrader"] = _nbgrader(words["id"], solution=True, grade=True, points=int(words["points"]))
        elif kind:
            raise ValueError(f"unknown markdown cell kind {kind!r} in '# %% {header}'")
        return cell
    cell = nbformat.v4.new_code_cell(body)
    kind = header.split()[0] if header else ""
    if kind == "demo":
        cell.metadata["lab"] = {"demonstration": True, "while_grading": ""}
    elif kind == "solution":
        cell.metadata["nbgrader"] = _nbgrader(words["id"], solution=True)
    elif kind == "tests":
        cell.metadata["nbgrader"] = _nbgrader(words["id"], grade=True, points=int(words["points"]))
    elif kind:
        raise ValueError(f"unknown cell kind {kind!r} in '# %% {header}'")
    return cell


def _nbgrader(grade_id: str, solution: bool = False, grade: bool = False, points: int | None = None) -> dict:
    # Test cells are locked; a cell the student writes in (solution) never is.
    metadata = {"grade": grade, "grade_id": grade_id, "locked": grade and not solution, "schema_version": 3,
                "solution": solution}
    if points is not None:
        metadata["points"] = points
    return metadata


def build(names: list[str] | None = None, execute: bool = True, timeout: int = 900) -> list:
    """Write (and execute) the solution notebooks from ``notebooks/source``."""
    from nbconvert.preprocessors import ExecutePreprocessor

    SOLUTIONS.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(SOURCES.glob("*.py")):
        if names and source.stem not in names:
            continue
        notebook = parse_source(source.read_text())
        target = SOLUTIONS / f"{source.stem}.ipynb"
        if execute:
            print(f"executing {source.stem} ...", flush=True)
            ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
                notebook, {"metadata": {"path": str(SOLUTIONS)}})
        _scrub(notebook)
        nbformat.write(notebook, target)
        written.append(target)
    return written


def _scrub(notebook: nbformat.NotebookNode) -> None:
    """Drop execution metadata that changes on every run (keeps diffs small)."""
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)


def set_up_course(root: Path, notebooks: list[str] | None = None, cell_timeout: int | None = None,
                  skip_demonstrations: bool = False) -> Path:
    """The one nbgrader course set-up, for release and for grading: the solution notebooks
    (all, or those named) as the assignment's source in ``root``, its config, and
    ``nbgrader generate_assignment`` run; ``root``. With ``skip_demonstrations``, autograde
    does not run the demonstrations (:mod:`labkit.instructor.demonstrations`)."""
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for notebook in sorted(SOLUTIONS.glob("*.ipynb")):
        if notebooks is None or notebook.stem in notebooks:
            shutil.copy(notebook, source / notebook.name)
    timeout = f"c.Execute.timeout = {int(cell_timeout)}\n" if cell_timeout is not None else ""
    # nbgrader fails a notebook whose kernel is silent for 4 s after a cell (a busy machine, a
    # class graded two at a time); a minute, as the students' Validate (tools/jupyter) waits.
    timeout += "c.Execute.iopub_timeout = 60\n"
    # Feedback pages show a hidden check's points and verdict, never its code or messages.
    feedback = ("c.GenerateFeedback.preprocessors = ['nbgrader.preprocessors.GetGrades', "
                "'labkit.instructor.feedback.HideHiddenChecks', "
                "'nbconvert.preprocessors.CSSHTMLHeaderPreprocessor']\n")
    skip = _SKIP_DEMONSTRATIONS if skip_demonstrations else ""
    (root / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(root)!r}\n"
                                             f"c.CourseDirectory.course_id = 'mlserver-lab'\n{timeout}{feedback}{skip}")
    run_nbgrader(["generate_assignment", ASSIGNMENT, "--force"], root)
    return root


# nbgrader 0.9's own lists, with the lab's two steps: the demonstrations swapped out before
# the hand-in runs (after the graded cells are restored from the source), back after it ran.
_SKIP_DEMONSTRATIONS = """import os
c.SkipDemonstrations.source = os.path.join(c.CourseDirectory.root, 'source', 'mlserver-lab')
c.Autograde.sanitize_preprocessors = [
    'nbgrader.preprocessors.ClearOutput', 'nbgrader.preprocessors.DeduplicateIds',
    'nbgrader.preprocessors.OverwriteKernelspec', 'nbgrader.preprocessors.OverwriteCells',
    'labkit.instructor.demonstrations.SkipDemonstrations', 'nbgrader.preprocessors.CheckCellMetadata']
c.Autograde.autograde_preprocessors = [
    'nbgrader.preprocessors.Execute', 'labkit.instructor.demonstrations.RestoreDemonstrations',
    'nbgrader.preprocessors.IgnorePattern', 'nbconvert.preprocessors.ClearMetadataPreprocessor',
    'nbgrader.preprocessors.LimitOutput', 'nbgrader.preprocessors.SaveAutoGrades',
    'nbgrader.preprocessors.AssignLatePenalties', 'nbgrader.preprocessors.CheckCellMetadata']
"""


def generate_student_versions(workdir: Path) -> Path:
    """Run ``nbgrader generate_assignment`` on the solutions; return the release folder."""
    return set_up_course(workdir) / "release" / ASSIGNMENT


class NbgraderTimeout(RuntimeError):
    """nbgrader ran longer than its time bound and was stopped (with its kernels and servers)."""


class NbgraderOverMemory(RuntimeError):
    """nbgrader, its kernels and their servers together grew past their memory bound and were
    stopped."""


class _MemoryWatch:
    """Every second, the memory (PSS) of a process and all its descendants (the kernels
    nbgrader runs, the servers they start, in sessions of their own too): the peak, and past
    ``cap`` bytes the whole tree is killed."""

    def __init__(self, pid: int, cap: float | None):
        import threading

        self.pid, self.cap, self.peak, self.exceeded = pid, cap, 0, False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        from labkit.serving.processes import kill_tree, process_tree, total_memory

        while not self._done.wait(1.0):
            used = total_memory(process_tree(self.pid))
            self.peak = max(self.peak, used)
            if self.cap and used > self.cap:
                self.exceeded = True
                kill_tree(self.pid)
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def run_nbgrader(arguments: list, workdir: Path, env: dict | None = None, timeout: float | None = None,
                 memory_cap: float | None = None, usage: dict | None = None) -> subprocess.CompletedProcess:
    """Run nbgrader in ``workdir`` (with extra environment variables ``env``); on failure
    raise with its own output. After ``timeout`` seconds nbgrader, the kernels it runs and
    every server they started are killed, and :class:`NbgraderTimeout` is raised; when they
    together hold more than ``memory_cap`` bytes, likewise and :class:`NbgraderOverMemory`.
    ``usage`` gets their peak memory ("peak_bytes")."""
    from labkit.serving.processes import kill_tree

    # nbgrader runs the `alembic` command: the virtualenv's bin must be on PATH.
    env = {**os.environ, **(env or {}),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "nbgrader", *arguments]
    with subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        watch = _MemoryWatch(process.pid, memory_cap) if usage is not None or memory_cap else None
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            stdout, stderr = process.communicate()
            raise NbgraderTimeout(f"nbgrader {' '.join(arguments)} stopped after {timeout:.0f} s:\n"
                                  f"{stdout}\n{stderr}") from None
        finally:
            if watch is not None:
                watch.stop()
                if usage is not None:
                    usage["peak_bytes"] = watch.peak
    if watch is not None and watch.exceeded and memory_cap:  # exceeded only ever with a cap
        raise NbgraderOverMemory(f"nbgrader {' '.join(arguments)} was stopped at {memory_cap / 2**30:.1f} GiB:\n"
                                 f"{stdout[-2000:]}\n{stderr[-2000:]}")
    if process.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(arguments)} failed:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def release(force: bool = False, target: PathLike = NOTEBOOKS) -> dict:
    """Write the student versions into ``target``; never overwrite a changed file
    unless ``force``. Returns {notebook name: "written" | "unchanged" | "kept (...)"}."""
    target = Path(target)
    manifest_file = target / MANIFEST_NAME
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    report = {}
    with tempfile.TemporaryDirectory() as workdir:
        released = generate_student_versions(Path(workdir))
        for notebook in sorted(released.glob("*.ipynb")):
            destination = target / notebook.name
            solution = nbformat.read(SOLUTIONS / notebook.name, as_version=4)
            fresh = student_copy(notebook.read_text(), solution).encode()
            if destination.exists():
                current = _digest(destination.read_bytes())
                if current == _digest(fresh):
                    report[notebook.name] = "unchanged"
                    continue
                if current != manifest.get(notebook.name) and not force:
                    report[notebook.name] = "kept (changed since the last release; use FORCE=1)"
                    continue
            destination.write_bytes(fresh)
            manifest[notebook.name] = _digest(fresh)
            report[notebook.name] = "written"
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return report


NBVAL_MARKER = re.compile(r"^# NBVAL_\w+[ \t]*\n?", re.M)


WRITEFILE_LINE = re.compile(r"^%%writefile[ \t]+\S+[ \t]*$")


def student_copy(text: str, solution: nbformat.NotebookNode | None = None) -> str:
    """What nbgrader released, minus what only the solution run needs: the widget state of
    the solution run (a saved notebook reopened with it shows "model not found" errors),
    nbval's markers and any execution counts. With the ``solution`` notebook, an exercise
    cell that writes a file keeps its ``%%writefile <path>`` first line (see
    :func:`_keep_writefile_line`)."""
    notebook = nbformat.reads(text, as_version=4)
    notebook.metadata.pop("widgets", None)
    first_lines = _writefile_lines(solution) if solution is not None else {}
    for cell in notebook.cells:
        cell.metadata.pop("lab", None)  # what grading skips is read from the solutions, never from here
        if cell.cell_type == "code":
            cell.source = NBVAL_MARKER.sub("", cell.source).lstrip("\n")
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in first_lines:
                cell.source = _keep_writefile_line(cell.source, first_lines[grade_id])
            cell.execution_count = None
            cell.outputs = []
    return nbformat.writes(notebook) + "\n"


def _writefile_lines(solution: nbformat.NotebookNode) -> dict:
    """{grade_id: "%%writefile <path>"} of the solution cells that write a file."""
    lines = {}
    for cell in solution.cells:
        metadata = cell.metadata.get("nbgrader", {})
        first = cell.source.split("\n", 1)[0] if cell.cell_type == "code" else ""
        if metadata.get("solution") and WRITEFILE_LINE.match(first):
            lines[metadata["grade_id"]] = first.strip()
    return lines


# What an exercise cell that writes a file holds under its %%writefile line when released:
# the least that is valid in that format (IPython refuses a %%writefile with an empty body).
# Run untouched it writes a file that its check names as incomplete.
STARTING_BODIES = {".json": "{\n}\n", ".txt": "# one line per package\n"}


def _keep_writefile_line(released: str, first_line: str) -> str:
    """nbgrader replaces a whole-cell solution with ``# YOUR CODE HERE`` and ``raise
    NotImplementedError()``; a cell magic must be the first line, so a student who types
    ``%%writefile`` under those gets "UsageError: Line magic function not found". Release the
    cell as ``%%writefile <path>`` and a starting body in the file's own format instead."""
    if released.split("\n", 1)[0].strip() == first_line:
        return released  # the template keeps the line (a .py with solution regions inside)
    suffix = "." + first_line.rsplit(".", 1)[-1] if "." in first_line else ""
    return first_line + "\n" + STARTING_BODIES.get(suffix, "# your lines here\n")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "release"])
    parser.add_argument("names", nargs="*", help="build: only these notebooks (file stems)")
    parser.add_argument("--no-execute", action="store_true")
    parser.add_argument("--force", action="store_true", help="release: overwrite changed notebooks")
    args = parser.parse_args(argv)
    if args.command == "build":
        for path in build(args.names, execute=not args.no_execute):
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    else:
        for name, outcome in release(force=args.force).items():
            print(f"{name}: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
