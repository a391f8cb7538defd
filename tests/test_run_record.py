"""The record `make test` writes of each run (tools/run_tests.py): phases, tests, the slowest,
MLServer starts by kind and the CPU other processes took, also when a phase fails."""

import importlib.util
import json
import os
import sys

import pytest

from tests.helpers.lab import REPO


def run_tests_module():
    spec = importlib.util.spec_from_file_location("run_tests", REPO / "tools" / "run_tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.a" name="test_fast" time="0.5"/>
<testcase classname="tests.a" name="test_slow" time="90.0"/>
<testcase classname="tests.b" name="test_broken" time="3.0"><failure message="no"/></testcase>
<testcase classname="tests.b" name="test_skipped" time="0.0"><skipped message="why"/></testcase>
</testsuite></testsuites>"""


def test_the_record_counts_tests_names_the_slowest_and_the_failed(tmp_path):
    module = run_tests_module()
    (tmp_path / "pytest.xml").write_text(JUNIT)
    summary = module.junit_summary(tmp_path / "pytest.xml")
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (2, 1, 1)
    assert summary["failed_tests"] == ["tests.b::test_broken"]
    assert summary["slowest"][0] == {"test": "tests.a::test_slow", "seconds": 90.0}
    assert module.junit_summary(tmp_path / "missing.xml") == {}


def test_the_record_counts_starts_by_kind(tmp_path):
    module = run_tests_module()
    log = tmp_path / "starts.log"
    log.write_text("tinyvit\t8.0\ttests/a.py::t\ttorch\ntinyvit\t4.0\ttests/b.py::t\tengine\n"
                   "top5\t10.0\t/home/notebooks\ttorch\nold\t6.0\ttests/c.py::t\n")
    assert module.starts_summary(log) == {
        "engine": {"starts": 1, "ready_s_mean": 4.0, "ready_s_total": 4},
        "torch": {"starts": 2, "ready_s_mean": 9.0, "ready_s_total": 18},
        "unknown": {"starts": 1, "ready_s_mean": 6.0, "ready_s_total": 6}}


def test_a_run_writes_its_record_also_when_a_phase_fails(tmp_path, monkeypatch):
    module = run_tests_module()
    monkeypatch.setattr(module, "RECORDS", tmp_path / "records")
    calls = []

    def failing_lint(command, cwd, env):
        calls.append(command)
        return 2

    monkeypatch.setattr(module.subprocess, "call", failing_lint)
    code = module.main(["--started", "0", "--state", str(tmp_path / "state")])
    assert code == 2 and len(calls) == 1  # no test runs after a failed lint
    record = json.loads(next((tmp_path / "records").glob("*.json")).read_text())
    assert list(record["phases"]) == ["setup", "lint"] and record["phases"]["lint"]["exit_code"] == 2
    assert 0 <= record["phases"]["lint"]["others_cpu_share"] <= 1 and record["cores"] >= 1


@pytest.mark.slow  # two streams of real processes: 3 s
def test_two_streams_run_side_by_side_and_a_stream_stops_at_its_first_failure(tmp_path, capsys):
    module = run_tests_module()

    def command(code: int, seconds: float = 0.0) -> list:
        # Prints when it started and ended (epoch seconds), then exits with ``code``.
        code_line = (f"import time, sys; began = time.time(); time.sleep({seconds}); "
                     f"print('hello {code}', began, time.time()); sys.exit({code})")
        return [sys.executable, "-c", code_line]

    env = dict(os.environ)
    phases = module.run_streams({"1": [("first", command(0, 1.5), env), ("broken", command(3), env),
                                       ("never", command(0), env)],
                                 "2": [("beside", command(0, 1.5), env)]}, tmp_path / "logs")
    assert {name: phase["exit_code"] for name, phase in phases.items() if name != "tests"} == \
        {"first": 0, "broken": 3, "beside": 0}
    assert phases["tests"]["exit_code"] == 3 and phases["first"]["stream"] == "1"
    span = {name: [float(value) for value in (tmp_path / "logs" / f"{name}.log").read_text().split()[2:4]]
            for name in ("first", "beside")}
    assert span["beside"][0] < span["first"][1] and span["first"][0] < span["beside"][1], "not side by side"
    assert (tmp_path / "logs" / "broken.log").read_text().startswith("hello 3 ")
    assert "hello 3" in capsys.readouterr().out  # each command's output is shown when it ends


def test_mypy_during_the_set_up_writes_its_phase_and_the_run_shows_its_output(tmp_path, monkeypatch, capsys):
    module = run_tests_module()

    def mypy(command, cwd, stdout, stderr):
        assert command[0].endswith("mypy")
        stdout.write("labkit/x.py:1: error: a type error\n")
        return 1

    monkeypatch.setattr(module.subprocess, "call", mypy)
    target = tmp_path / "types-early.json"
    assert module.types_early(target, tmp_path / "state") == 0  # the set-up goes on: the tests run
    phase = json.loads(target.read_text())
    assert phase["exit_code"] == 1 and phase["during"] == "setup" and phase["seconds"] >= 0
    assert module.read_types(target) == phase
    assert "a type error" in capsys.readouterr().out
    assert module.read_types(tmp_path / "missing.json") is None and module.read_types(None) is None


def test_a_run_with_mypy_done_in_the_set_up_leaves_it_out_of_the_streams_and_fails_at_its_end(tmp_path, monkeypatch):
    module = run_tests_module()
    monkeypatch.setattr(module, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(module.subprocess, "call", lambda command, cwd, env: 0)  # lint
    streams = {}

    def run_streams(given, logs):
        streams.update(given)
        return {"tests": {"seconds": 1.0, "exit_code": 0}}

    monkeypatch.setattr(module, "run_streams", run_streams)
    early = tmp_path / "types-early.json"
    early.write_text(json.dumps({"seconds": 29.0, "exit_code": 1, "during": "setup"}))
    code = module.main(["--started", "0", "--state", str(tmp_path / "state"), "--types-from", str(early)])
    assert code == 1
    assert [name for name, _, _ in streams["1"]] == ["pytest-grading", "nbval"]
    record = json.loads(next((tmp_path / "records").glob("*.json")).read_text())
    assert record["phases"]["types"]["exit_code"] == 1
    # Without it, the first stream runs mypy at its end.
    early.unlink()
    streams.clear()
    assert module.main(["--started", "0", "--state", str(tmp_path / "state"), "--types-from", str(early)]) == 0
    assert [name for name, _, _ in streams["1"]] == ["pytest-grading", "nbval", "types"]
