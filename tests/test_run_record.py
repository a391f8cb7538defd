"""The record `make test` writes of each run (tools/run_tests.py): phases, tests, the slowest,
MLServer starts by kind and the CPU other processes took, also when a phase fails."""

import importlib.util
import json
import sys

from tests.conftest import REPO


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

    def fake_call(command, cwd, env):
        calls.append(command)
        return 0 if len(calls) == 1 else 3  # lint passes, pytest fails

    monkeypatch.setattr(module.subprocess, "call", fake_call)
    code = module.main(["--started", "0", "--state", str(tmp_path / "state")])
    assert code == 3 and len(calls) == 2  # nbval does not run after a failed phase
    record = json.loads(next((tmp_path / "records").glob("*.json")).read_text())
    assert list(record["phases"]) == ["setup", "lint", "pytest"]
    assert record["phases"]["pytest"]["exit_code"] == 3
    assert 0 <= record["phases"]["lint"]["others_cpu_share"] <= 1
    assert record["cores"] >= 1 and sys.executable in calls[1][0]
