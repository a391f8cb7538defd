"""Every entry of the mistake catalogue (tests/checks/mistakes.py) holds, in process: the
``%%writefile`` check and the graded check give their verdicts, the graded message names the
mistake (``says``) without the fix (``hides``), and every other check of the same notebook
passes on it (one mistake costs its own exercise once)."""

from __future__ import annotations

import contextlib
import io
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labkit import checks
from labkit.checks import histogram, server_numbers
from labkit.instructor import hidden_checks
from labkit.workspace import lab_service_copy, service_folder
from tests.checks.mistakes import CATALOGUE, FAIL, KINDS, PASS, Mistake
from tests.helpers.solutions import solution_cell, written


def verdict(check) -> tuple[str, str]:
    """(PASS or FAIL, what the check printed or raised)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            check()
    except checks.CheckFailed as failure:
        return FAIL, str(failure)
    return PASS, printed.getvalue()


# ---------------------------------------------------------------------- the exercises' folders
@pytest.fixture(scope="module")
def folders(tmp_path_factory, checkpoint) -> dict:
    """One folder per notebook, with the solution's files: an entry replaces one of them."""
    root = tmp_path_factory.mktemp("catalogue")
    made = {}
    made["01"] = service_folder(root / "01" / "my-tinyvit", checkpoint=checkpoint)
    for grade_id, name in (("model-settings", "model-settings.json"), ("server-settings", "settings.json"),
                           ("first-service", "serve-model.py")):
        (made["01"] / name).write_text(written(solution_cell("01_first_service.ipynb", grade_id)))
    made["03"] = service_folder(root / "03" / "top5", checkpoint=checkpoint)
    for grade_id, name in (("top5-settings", "model-settings.json"), ("top5-service", "serve-model.py")):
        (made["03"] / name).write_text(written(solution_cell("03_top5_labels.ipynb", grade_id)))
    made["05"] = lab_service_copy(root / "05" / "scaled", checkpoint)
    for grade_id, name in (("scaled-settings", "settings.json"), ("scaled-model-settings", "model-settings.json")):
        (made["05"] / name).write_text(written(solution_cell("05_scaling.ipynb", grade_id)))
    made["06"] = lab_service_copy(root / "06" / "shipped", checkpoint)
    from labkit.model import hf_service

    made["04"] = hf_service.artifact_folder(root / "04" / "tinyvit-hf", checkpoint)
    return made


@contextlib.contextmanager
def answered(folder: Path, name: str, answer: str):
    """``folder`` with ``name`` replaced by the entry's answer, put back afterwards."""
    path = folder / name
    before = path.read_bytes() if path.exists() else None
    path.write_text(answer)
    try:
        yield folder
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)


def file_exercise(notebook: str, name: str, write, graded, others=()):
    """An exercise whose answer is one file of the notebook's folder."""
    def run(mistake: Mistake, folders: dict) -> dict:
        # {folder}: the folder's absolute path, as a student's own machine would have it
        answer = mistake.answer.replace("{folder}", str(folders[notebook]))
        with answered(folders[notebook], name, answer) as folder:
            return {"write": verdict(lambda: write(folder)) if write else None,
                    "graded": verdict(lambda: graded(folder)),
                    "others": [verdict(lambda check=check: check(folder)) for check in others]}
    return run


# ---------------------------------------------------------------------- function exercises
def function_of(source: str, name: str):
    namespace: dict = {}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]


def sweep_table() -> pd.DataFrame:
    """A table like 05's at 8 callers, labelled as a sweep labels it: the rows coincide for
    most wrong picks here (the lowest p95 is the best within budget), as they did on the
    issue's student's table; the tables the check draws tell them apart."""
    return pd.DataFrame({"configuration": ["1 worker", "2 workers", "2 workers + batching"],
                         "concurrency": [8, 8, 8], "payload": ["jpeg"] * 3, "requests": [72, 84, 104],
                         "errors": [0, 0, 0], "seconds": [8.0] * 3, "throughput_rps": [9.0, 10.5, 13.0],
                         "images_per_s": [9.0, 10.5, 13.0], "p50_ms": [700.0, 650.0, 520.0],
                         "p95_ms": [900.0, 850.0, 600.0], "p99_ms": [1000.0, 950.0, 640.0],
                         "avg_batch": [1.0, 1.0, 3.2]}, index=[1, 3, 5])


def pick_exercise(mistake: Mistake, folders: dict) -> dict:
    pick = function_of(mistake.answer, "pick_configuration")
    table, budget = sweep_table(), 650.0
    graded = verdict(lambda: checks.scaling_choice(table, pick, budget))
    hidden = verdict(lambda: hidden_checks.pick_configuration_function(pick, table))
    return {"write": None, "graded": graded, "others": [hidden]}


def scrapes_exercise(mistake: Mistake, folders: dict) -> dict:
    read = function_of(mistake.answer, "served_rate_and_p95")
    # The notebook's own scrapes: a pair drawn the way the check draws its own.
    before, after, seconds, _, _ = server_numbers._drawn_case(np.random.default_rng(7), 0)
    return {"write": None, "graded": verdict(lambda: checks.served_rate_and_p95(read, before, after, seconds)),
            "others": []}


EXERCISES = {
    "01 settings.json": file_exercise(
        "01", "settings.json", write=checks.server_settings,
        graded=lambda folder: checks.server_settings(folder, expected_workers=0, debug_off=True),
        others=[checks.model_settings]),
    "01 model-settings.json": file_exercise(
        "01", "model-settings.json", write=lambda folder: checks.model_settings(folder, require_code=False),
        graded=checks.model_settings,
        others=[lambda folder: checks.server_settings(folder, expected_workers=0, debug_off=True)]),
    "03 model-settings.json": file_exercise(
        "03", "model-settings.json", write=lambda folder: checks.model_settings(folder, require_code=False),
        graded=checks.model_settings),
    "04 hf model-settings.json": file_exercise(
        "04", "model-settings.json", write=checks.hf_model_settings, graded=checks.hf_model_settings),
    "05 settings.json": file_exercise(
        "05", "settings.json", write=checks.server_settings,
        graded=lambda folder: checks.server_settings(folder, expected_workers=2),
        others=[lambda folder: checks.model_settings(folder, batching=(8, 0.01))]),
    "05 model-settings.json": file_exercise(
        "05", "model-settings.json", write=lambda folder: checks.model_settings(folder, require_code=False),
        graded=lambda folder: checks.model_settings(folder, batching=(8, 0.01)),
        others=[lambda folder: checks.server_settings(folder, expected_workers=2)]),
    "06 requirements.txt": file_exercise("06", "requirements.txt", write=checks.requirements,
                                         graded=checks.requirements),
    "05 pick_configuration": pick_exercise,
    "07 served_rate_and_p95": scrapes_exercise,
}


@pytest.mark.parametrize("mistake", CATALOGUE, ids=[f"{number}-{mistake.exercise}-{mistake.kind}"
                                                     for number, mistake in enumerate(CATALOGUE)])
def test_the_checks_give_each_catalogued_answer_its_verdict(mistake, folders):
    assert mistake.kind in KINDS and mistake.exercise in EXERCISES
    result = EXERCISES[mistake.exercise](mistake, folders)
    graded, message = result["graded"]
    assert graded == mistake.graded, f"graded {graded}, catalogued {mistake.graded}:\n{message}"
    if mistake.graded == FAIL:
        for words in mistake.says:
            assert words in message, f"the message does not say {words!r}:\n{message}"
        for words in mistake.hides:
            assert words not in message, f"the message hands over {words!r}:\n{message}"
    if result["write"] is not None:
        expected = mistake.write or mistake.graded
        assert result["write"][0] == expected, f"the %%writefile check: {result['write'][1]}"
    for other, said in result["others"]:
        assert other == mistake.others, (f"another check of the notebook charged this mistake again:\n{said}"
                                         if mistake.others == PASS else f"an untouched answer earned points:\n{said}")


def test_the_catalogue_covers_every_class_and_each_exercise_has_ten_entries():
    kinds = Counter(mistake.kind for mistake in CATALOGUE)
    assert set(kinds) == set(KINDS), f"classes without an entry: {set(KINDS) - set(kinds)}"
    per_exercise = Counter(mistake.exercise for mistake in CATALOGUE)
    thin = {exercise: count for exercise, count in per_exercise.items() if count < 10}
    assert not thin, f"exercises with fewer than ten entries: {thin}"
    assert all(any(m.exercise == exercise and m.graded == PASS for m in CATALOGUE) for exercise in per_exercise), \
        "every exercise has a correct answer written unlike the solution"


def test_docs_give_the_catalogues_counts():
    from tests.helpers.lab import REPO

    docs = (REPO / "docs" / "checks.md").read_text()
    assert f"{len(CATALOGUE)} entries" in docs, "docs/checks.md: the catalogue's size"
    for kind, count in Counter(mistake.kind for mistake in CATALOGUE).items():
        assert f"| {kind} | {count} |" in docs, f"docs/checks.md: the count of {kind!r}"


def test_drawn_scrapes_hold_every_sample_a_real_scrape_has():
    before, after, *_ = server_numbers._drawn_case(np.random.default_rng(3), 1)
    samples = set(after["sample"])
    for sample in ("rest_server_request_duration_seconds_bucket", "rest_server_request_duration_seconds_count",
                   "rest_server_request_duration_seconds_sum", "rest_server_request_duration_seconds_created",
                   "rest_server_requests_total", "rest_server_requests_created"):
        assert sample in samples
    assert not math.isnan(histogram.mean_ms(before, after))


def test_a_dockerfile_written_into_the_notebooks_own_folder_is_named_as_such(tmp_path, monkeypatch):
    context = tmp_path / "build" / "shipped"
    context.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "Dockerfile").write_text("FROM seldonio/mlserver:1.7.1\n")
    outcome, message = verdict(lambda: checks.image_folder(context))
    assert outcome == FAIL and "there is one in shipped/ next to the notebook" in message
    assert "mlserver dockerfile" not in message, "the command is the exercise's answer"
    shutil.rmtree(tmp_path / "shipped")
    outcome, message = verdict(lambda: checks.image_folder(context))
    assert "notebook's own folder" not in message and "mlserver dockerfile" not in message
    assert "there is one" not in message
    # helper session 6: `mlserver dockerfile .` writes it beside the notebook itself
    (tmp_path / "Dockerfile").write_text("FROM seldonio/mlserver:1.7.1\n")
    outcome, message = verdict(lambda: checks.image_folder(context))
    assert outcome == FAIL and "there is one in the folder of the notebook" in message


def test_a_hand_written_or_misplaced_dockerfile_is_named_and_mlservers_own_passes(tmp_path, monkeypatch):
    # helper session 8: five hand-written lines with the four steps passed; an exec-form CMD was
    # read as none (and a base image named in a comment as one); a Dockerfile written one folder
    # above the build folder was not found. Only the Dockerfile is looked at up to its verdict.
    from labkit.checks.build_folder import _mlserver_dockerfile

    context = tmp_path / "build" / "shipped"
    context.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build" / "Dockerfile").write_text(_mlserver_dockerfile())
    outcome, message = verdict(lambda: checks.image_folder(context))
    assert outcome == FAIL and "the folder above the build folder" in message, message
    (context / "Dockerfile").write_text("FROM seldonio/mlserver:1.7.1-slim\nCOPY requirements.txt .\n"
                                        "RUN pip install -r requirements.txt\nCOPY . .\nCMD mlserver start .\n")
    outcome, message = verdict(lambda: checks.image_folder(context))
    assert outcome == FAIL and "written or changed by hand" in message and "line 1" in message, message
    assert "mlserver dockerfile" not in message, "the command is the exercise's answer"
    (context / "Dockerfile").write_text("FROM python:3.10\n# seldonio/mlserver:1.7.1 would be better\nCOPY . .\n"
                                        "RUN pip install -r requirements.txt\nCMD [\"mlserver\", \"start\", \".\"]\n")
    outcome, message = verdict(lambda: checks.image_folder(context))
    # helper session 15: told "its base image is missing" of a file that names one
    assert outcome == FAIL and "it starts FROM python:3.10, another base image" in message, message
    assert "seldonio" not in message
    (context / "Dockerfile").write_text("COPY . .\nRUN pip install -r requirements.txt\nCMD mlserver start .\n")
    outcome, message = verdict(lambda: checks.image_folder(context))
    assert outcome == FAIL and "its base image is missing" in message, message
    (context / "Dockerfile").write_text(_mlserver_dockerfile().replace("\n", "\r\n") + "\n\n")
    outcome, message = verdict(lambda: checks.image_folder(context))
    assert outcome == PASS and "the build folder has MLServer's Dockerfile" in message, message


@pytest.mark.slow  # each of them 10 times: 9 s (every entry runs once in make test-fast)
def test_the_mistakes_that_were_ticked_by_chance_fail_every_time(folders):
    # The tables and scrapes are drawn per call: a wrong answer that a draw can miss is a
    # grade by luck. These passed in some runs before the draws were made to tell them apart.
    by_chance = [mistake for mistake in CATALOGUE if "ticked" in mistake.note]
    assert len(by_chance) >= 3
    for mistake in by_chance:
        for _ in range(10):
            assert EXERCISES[mistake.exercise](mistake, folders)["graded"][0] == FAIL, mistake.note
