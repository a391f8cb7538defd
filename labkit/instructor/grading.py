"""Grade submitted notebooks with nbgrader, end to end (``make grade``).

    python -m labkit grade SUBMISSIONS OUT

``SUBMISSIONS`` holds one folder per student with the notebooks as they handed
them in (``SUBMISSIONS/alice/03_top5_labels.ipynb``). The command sets up one
nbgrader course per student in ``OUT/courses/<student>`` from the solution
notebooks (created anew on every run, so running it twice gives the same grades),
copies the submissions in (the originals are never modified), runs ``nbgrader
autograde`` for several students side by side (a hanging cell times out, a crashed
kernel or a server left running costs only that student, and a hand-in that runs longer
than ``--hand-in-timeout`` seconds, say an endless loop in ``predict()``, or whose kernels
and servers together hold more than ``--hand-in-memory`` GiB, is stopped with its kernel and
servers and scores 0, its feedback saying why), then writes

* ``OUT/grades.csv``: one row per student (nbgrader's gradebook export),
* ``OUT/grades_by_check.csv``: one row per student and graded cell;
  ``needs_manual_grade`` marks a written answer to grade by hand (read it in the
  feedback; the courses are rebuilt on every run),
* ``OUT/feedback/<student>/<notebook>.html``: nbgrader's feedback per notebook.

Grading runs the notebooks in quick mode (``LAB_QUICK=1``): short load tests,
same code paths; and it does not run the demonstrations no point depends on
(measurements, sweeps, panels: :mod:`labkit.instructor.demonstrations`), whose output on
the feedback page says "skipped while grading". ``--run-demonstrations`` runs them too.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labkit.paths import PathLike
from labkit.instructor.build import ASSIGNMENT, NbgraderOverMemory, NbgraderTimeout, run_nbgrader, set_up_course
from labkit.serving.processes import stop_orphans
from labkit import config

CELL_TIMEOUT_SECONDS = 300
# One student's whole hand-in: all seven notebooks in quick mode took 10.6 minutes (2026-12-01) on
# a 2-core machine, so twice that is a hang, not a slow machine.
HAND_IN_TIMEOUT_SECONDS = 1800
# One student's kernels and servers together (PSS): the memory a class's JupyterHub gives a
# student (README), so a hand-in that grows past it (a predict() that keeps every batch) is
# stopped before it takes the grader's memory from the hand-ins graded beside it.
HAND_IN_MEMORY_GIB = 3.0


def grade(submissions: PathLike, out: PathLike, notebooks: list[str] | None = None,
          cell_timeout: int = CELL_TIMEOUT_SECONDS, jobs: int | None = None,
          hand_in_timeout: float = HAND_IN_TIMEOUT_SECONDS, run_demonstrations: bool = False,
          hand_in_memory_gib: float = HAND_IN_MEMORY_GIB) -> list:
    """Grade every student folder in ``submissions``, ``jobs`` students at a time (default:
    one per core), each within ``hand_in_timeout`` seconds, without the demonstrations
    unless ``run_demonstrations``; return the rows of grades_by_check.csv.

    Args:
        submissions: nbgrader's submitted/ folder, one folder per student.
        out: where the grades (``grades_by_check.csv``) and feedback pages go.
        notebooks: the notebooks to grade (default: every released one).
        cell_timeout: seconds one cell may run.
        jobs, hand_in_timeout, run_demonstrations: as above.
        hand_in_memory_gib: memory one hand-in may take before it is stopped (and named).

    Raises:
        ValueError: ``submissions`` holds no student folder.
    """
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    students = sorted(path.name for path in submissions.iterdir() if path.is_dir())
    if not students:
        raise ValueError(f"{submissions} has no student folders (expected {submissions}/<student>/*.ipynb)")
    template = _set_up_course(out / "course", notebooks, cell_timeout, skip_demonstrations=not run_demonstrations)
    if (out / "courses").exists():
        shutil.rmtree(out / "courses")
    courses = {student: _student_course(template, out / "courses" / student, submissions / student)
               for student in students}
    jobs = jobs or len(os.sched_getaffinity(0))
    if (out / "feedback").exists():
        shutil.rmtree(out / "feedback")
    # The longest hand-ins first (the most notebooks): a class's last minutes are not one
    # student's seven notebooks on one core while the other cores wait.
    order = sorted(students, key=lambda student: -len(list((courses[student] / "submitted").rglob("*.ipynb"))))
    side_by_side = max(1, min(jobs, len(students)))
    # Torch threads for each hand-in's kernels and servers: the cores shared out between the
    # hand-ins graded side by side. A thread per core beside another busy hand-in waits on its
    # slowest thread (03's checks: 5-6 times as long as with one thread there, this session).
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, len(os.sched_getaffinity(0)) // side_by_side))
    # 05's challenge measures one hand-in at a time, with the threads the machine gives one process.
    challenge = {config.CHALLENGE_LOCK: str((out / ".challenge.lock").resolve()),
                 config.CHALLENGE_THREADS: os.environ.get("OMP_NUM_THREADS") or str(len(os.sched_getaffinity(0)))}
    with ThreadPoolExecutor(side_by_side) as pool:
        futures = {student: pool.submit(_grade_student, student, courses[student], out / "feedback",
                                        hand_in_timeout, hand_in_memory_gib * 2**30, threads, challenge)
                   for student in order}
        outcomes, rows = {}, []
        for student in students:  # the gradebook in the students' order
            outcomes[student], student_rows = futures[student].result()
            rows += student_rows
    exported = [courses[student] / "grades.csv" for student in students]
    _merge_csv(exported, out / "grades.csv")
    _write_csv(out / "grades_by_check.csv", rows)
    _write_timing(out / "timing.csv", outcomes)
    return rows


def _student_course(template: Path, course: Path, student_folder: Path) -> Path:
    """A course of its own for one student (nbgrader's gradebook is one SQLite file: students
    graded side by side must not share it), with their notebooks collected."""
    shutil.copytree(template, course)
    config = (course / "nbgrader_config.py").read_text().replace(repr(str(template)), repr(str(course)))
    (course / "nbgrader_config.py").write_text(config)
    _collect(student_folder, course / "submitted" / student_folder.name / ASSIGNMENT)
    return course


def _grade_student(student: str, course: Path, feedback: Path, timeout: float, memory_cap: float,
                   threads: str = "", challenge: dict | None = None) -> tuple:
    """One student from hand-in to grades: autograde, the feedback pages (into
    ``feedback/<student>/``), the gradebook's export; (the outcome, the rows by check). In the
    student's own thread, so that the next nbgrader commands (about 6 s a student) overlap the
    grading of the others rather than queueing after the whole class."""
    outcome = _autograde(student, course, timeout, memory_cap, threads, challenge or {})
    if outcome["failure"]:
        # nbgrader has no graded notebook to give feedback on: say why instead.
        _write_failure_feedback(feedback, {student: outcome["failure"]}, course)
    else:
        run_nbgrader(["generate_feedback", ASSIGNMENT, "--force"], course)
        _copy_feedback(course / "feedback", feedback)
    run_nbgrader(["export", f"--to={course / 'grades.csv'}"], course)
    return outcome, _grades_by_check(course, [student])


def _autograde(student: str, course: Path, timeout: float, memory_cap: float, threads: str = "",
               challenge: dict | None = None) -> dict:
    """Run nbgrader autograde for one student; a failure (the kernel died, the hand-in ran
    past ``timeout`` or grew past ``memory_cap`` bytes) scores 0."""
    started = time.monotonic()
    failure = ""
    usage: dict = {}
    try:
        # Free ports for every server: students graded side by side must not race for 8080.
        run_nbgrader(["autograde", ASSIGNMENT, f"--student={student}", "--force"], course,
                     env={config.QUICK: "1", config.FREE_PORTS: "1", **(challenge or {}),
                          **({"OMP_NUM_THREADS": threads} if threads else {})},
                     timeout=timeout, memory_cap=memory_cap,
                     usage=usage)
    except NbgraderOverMemory as error:
        failure = (f"Your notebooks and the servers they started grew past {memory_cap / 2**30:.1f} GiB of memory "
                   "together and were stopped (a class's JupyterHub gives each student about that much): for "
                   "example a predict() or load() that keeps every batch it sees, or a list that grows in a "
                   f"loop.\n\n{str(error)[-2500:]}")
        print(f"{student}: stopped at {memory_cap / 2**30:.1f} GiB of memory, scored 0", file=sys.stderr)
    except NbgraderTimeout as error:
        failure = (f"Grading your notebooks took longer than {timeout:.0f} s and was stopped: a cell "
                   "that never finishes, for example an endless loop in predict() or a request "
                   f"that waits forever.\n\n{str(error)[-2500:]}")
        print(f"{student}: stopped after {timeout:.0f} s, scored 0", file=sys.stderr)
    except RuntimeError as error:
        failure = str(error)[-3000:]
        print(f"{student}: autograde failed, scored 0", file=sys.stderr)
    finally:
        stop_orphans()  # a server a finished student's notebook left behind
    return {"seconds": time.monotonic() - started, "started": started, "failure": failure,
            "peak_mb": usage.get("peak_bytes", 0) / 2**20}


def _set_up_course(course: Path, notebooks: list[str] | None, cell_timeout: int,
                   skip_demonstrations: bool) -> Path:
    if course.exists():
        shutil.rmtree(course)
    return set_up_course(course, notebooks, cell_timeout, skip_demonstrations)


def _collect(student_folder: Path, target: Path) -> None:
    """Copy the student's notebooks that belong to the assignment (read-only use)."""
    target.mkdir(parents=True)
    expected = {path.name for path in (target.parents[2] / "source" / ASSIGNMENT).glob("*.ipynb")}
    for notebook in student_folder.rglob("*.ipynb"):
        if notebook.name in expected and ".ipynb_checkpoints" not in notebook.parts:
            shutil.copy(notebook, target / notebook.name)


def _grades_by_check(course: Path, students: list) -> list:
    from nbgrader.api import Gradebook, MissingEntry

    rows = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            for notebook in gradebook.find_assignment(ASSIGNMENT).notebooks:
                for cell in notebook.grade_cells:
                    try:
                        grade = gradebook.find_grade(cell.name, notebook.name, ASSIGNMENT, student)
                        points, by_hand = grade.score, grade.needs_manual_grade
                    except MissingEntry:
                        points, by_hand = 0.0, False  # notebook not handed in
                    rows.append({"student": student, "notebook": notebook.name, "check": cell.name,
                                 "points": float(points), "max_points": float(cell.max_score),
                                 "needs_manual_grade": by_hand})
    return rows


def _merge_csv(parts: list, target: Path) -> None:
    """One gradebook CSV from the per-student exports (same columns)."""
    rows, header = [], None
    for part in parts:
        with open(part, newline="") as handle:
            reader = csv.DictReader(handle)
            header = header or reader.fieldnames
            rows += list(reader)
    assert header is not None, "no part with a header"  # grade() refuses a class without students
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def _write_timing(path: Path, outcomes: dict) -> None:
    """Seconds per hand-in, and when each started relative to the first (side by side)."""
    first = min(outcome["started"] for outcome in outcomes.values())
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "started_s", "seconds", "peak_memory_mb", "graded"])
        for student, outcome in outcomes.items():
            writer.writerow([student, f"{outcome['started'] - first:.1f}", f"{outcome['seconds']:.1f}",
                             f"{outcome['peak_mb']:.0f}", "no" if outcome["failure"] else "yes"])


def _write_csv(path: Path, rows: list) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["student", "notebook", "check", "points", "max_points",
                                                    "needs_manual_grade"])
        writer.writeheader()
        writer.writerows(rows)


def _copy_feedback(feedback: Path, target: Path) -> None:
    for html in feedback.glob(f"*/{ASSIGNMENT}/*.html"):
        student = html.parents[1].name
        (target / student).mkdir(parents=True, exist_ok=True)
        shutil.copy(html, target / student / html.name)


def _write_failure_feedback(target: Path, failures: dict, course: Path) -> None:
    """nbgrader writes no feedback for a notebook it could not run: say why instead."""
    import html

    for student, message in failures.items():
        for notebook in (course / "submitted" / student / ASSIGNMENT).glob("*.ipynb"):
            page = target / student / notebook.with_suffix(".html").name
            if not page.exists():
                page.parent.mkdir(parents=True, exist_ok=True)
                page.write_text(f"<h1>{html.escape(notebook.stem)}: not graded (0 points)</h1>"
                                "<p>Running your notebook failed, for example because its kernel died "
                                "or a cell never finished. Run it from a fresh kernel (Kernel > Restart "
                                "and Run All) before you hand it in.</p>"
                                f"<pre>{html.escape(message)}</pre>")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path)
    parser.add_argument("out", type=Path, nargs="?", default=Path("grading"))
    parser.add_argument("--notebooks", nargs="*", help="grade only these notebooks (file stems)")
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT_SECONDS)
    parser.add_argument("--jobs", type=int, help="students graded side by side (default: one per core)")
    parser.add_argument("--hand-in-timeout", type=float, default=HAND_IN_TIMEOUT_SECONDS,
                        help="seconds one student's notebooks may take in all; then they score 0")
    parser.add_argument("--hand-in-memory", type=float, default=HAND_IN_MEMORY_GIB,
                        help="GiB one student's kernels and servers may hold together; then they score 0")
    parser.add_argument("--run-demonstrations", action="store_true",
                        help="run the demonstrations too (slower; the points are the same)")
    args = parser.parse_args(argv)
    rows = grade(args.submissions, args.out, args.notebooks, args.cell_timeout, args.jobs, args.hand_in_timeout,
                 args.run_demonstrations, args.hand_in_memory)
    totals: dict[str, tuple[float, float]] = {}
    for row in rows:
        got, most = totals.get(row["student"], (0.0, 0.0))
        totals[row["student"]] = (got + row["points"], most + row["max_points"])
    for student, (got, most) in totals.items():
        print(f"{student}: {got:g} / {most:g}")
    print(f"grades: {args.out / 'grades.csv'}, per check: {args.out / 'grades_by_check.csv'}, "
          f"feedback: {args.out / 'feedback'}/<student>/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
