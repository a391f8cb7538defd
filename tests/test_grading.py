"""The instructor's grading pipeline with the real nbgrader: correct, untouched and
subtly wrong submissions, a crashing one, idempotence, untouched originals, no
servers left behind."""

import csv
import hashlib

import nbformat
import psutil
import pytest

from labkit.grading import grade
from labkit.notebooks import SOLUTIONS, release

pytestmark = pytest.mark.slow
NOTEBOOK = "03_top5_labels.ipynb"
EXERCISE = "top5-service"


def solution_code() -> str:
    notebook = nbformat.read(SOLUTIONS / NOTEBOOK, as_version=4)
    return next(cell.source for cell in notebook.cells
                if cell.metadata.get("nbgrader", {}).get("grade_id") == EXERCISE)


def submission(student_version, folder, code=None, edit=None):
    """A student's hand-in: the released notebook with ``code`` in the exercise cell."""
    notebook = nbformat.read(student_version, as_version=4)
    for cell in notebook.cells:
        if code is not None and cell.metadata.get("nbgrader", {}).get("grade_id") == EXERCISE:
            cell.source = code
    if edit:
        edit(notebook)
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / NOTEBOOK)


def crash_the_kernel(notebook):
    notebook.cells.insert(3, nbformat.v4.new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))


def drop_the_stop_cell(notebook):
    notebook.cells[:] = [cell for cell in notebook.cells if "server.stop()" not in cell.source]


def digest(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*.ipynb")}


def read_points(out):
    with open(out / "grades_by_check.csv") as handle:
        return {(row["student"], row["check"]): float(row["points"]) for row in csv.DictReader(handle)}


def lab_servers():
    return [process for process in psutil.process_iter(["cmdline"])
            if any("mlserver-lab-tinyvit-top5" in part for part in (process.info["cmdline"] or []))]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    released = tmp_path_factory.mktemp("released")
    release(target=released)
    student_version = released / NOTEBOOK
    submissions = tmp_path_factory.mktemp("submissions")
    correct = solution_code()
    by_label = correct.replace(
        "        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)\n",
        "        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)\n"
        "        order = np.argsort(labels, axis=1)\n"
        "        labels, scores = np.take_along_axis(labels, order, 1), np.take_along_axis(scores, order, 1)\n")
    first_image_only = correct.replace("self.classify(decode_images(payload))",
                                       "self.classify(decode_images(payload)[:1])")
    submission(student_version, submissions / "alice", correct)
    submission(student_version, submissions / "bob")
    submission(student_version, submissions / "carol", by_label)
    submission(student_version, submissions / "dave", first_image_only, edit=drop_the_stop_cell)
    submission(student_version, submissions / "eve", correct, edit=crash_the_kernel)
    before = digest(submissions)
    out = tmp_path_factory.mktemp("grading")
    grade(submissions, out, notebooks=["03_top5_labels"], cell_timeout=120)
    return submissions, out, before


def test_points_per_check(graded):
    _, out, _ = graded
    points = read_points(out)
    expected = {
        "alice": {"top5-check": 3, "top5-batch-check": 2, "top5-batching-check": 2},  # correct
        "bob": {"top5-check": 0, "top5-batch-check": 0, "top5-batching-check": 0},  # untouched
        "carol": {"top5-check": 0, "top5-batch-check": 2, "top5-batching-check": 2},  # ordered by label
        "dave": {"top5-check": 3, "top5-batch-check": 0, "top5-batching-check": 0},  # one row per request
        "eve": {"top5-check": 0, "top5-batch-check": 0, "top5-batching-check": 0},  # kernel crashed
    }
    for student, checks in expected.items():
        for check, value in checks.items():
            assert points[(student, check)] == value, (student, check, points[(student, check)])


def test_gradebook_csv_and_feedback_files(graded):
    _, out, _ = graded
    with open(out / "grades.csv") as handle:
        totals = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    assert totals == {"alice": 7, "bob": 0, "carol": 4, "dave": 3, "eve": 0}
    for student in totals:
        assert (out / "feedback" / student / NOTEBOOK.replace(".ipynb", ".html")).is_file()


def test_submissions_untouched_and_no_server_left(graded):
    submissions, _, before = graded
    assert digest(submissions) == before
    assert lab_servers() == []


def test_grading_again_gives_the_same_grades(graded, tmp_path):
    submissions, out, _ = graded
    only_alice = tmp_path / "submissions"
    (only_alice / "alice").mkdir(parents=True)
    (only_alice / "alice" / NOTEBOOK).write_bytes((submissions / "alice" / NOTEBOOK).read_bytes())
    grade(only_alice, tmp_path / "again", notebooks=["03_top5_labels"], cell_timeout=120)
    first = {key: value for key, value in read_points(out).items() if key[0] == "alice"}
    assert read_points(tmp_path / "again") == first and sum(first.values()) == 7
