"""benchmarks/serving.py in quick mode: all four rows, the ratios, the report files."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_quick_benchmark_produces_every_row_and_the_ratios(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/serving.py", "--quick", "--seconds", "0.7",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    [report_file] = tmp_path.glob("*.json")
    report = json.loads(report_file.read_text())
    assert set(report["rows"]) == {"limit", "naive", "course_text", "tuned", "tuned_rest", "tuned_rest_gzip"}
    assert report["rows"]["limit"]["images_per_s"] > 0
    for row in ("naive", "course_text", "tuned", "tuned_rest", "tuned_rest_gzip"):
        assert set(report["rows"][row]) == {"1", "4", "8", "16"}
        assert all(level["images_per_s"] > 0 and level["p95_ms"] >= level["p50_ms"]
                   for level in report["rows"][row].values())
    assert set(report["ratios"]) == {"tuned_over_limit", "tuned_over_naive", "tuned_over_course_text"}
    for values in report["ratios"].values():
        assert set(values) == {"1", "4", "8", "16"} and all(value > 0 for value in values.values())
    assert report["machine"]["cores"] >= 1
    assert "| (d) MLServer tuned, gRPC | 8 |" in (tmp_path / report_file.name.replace(".json", ".md")).read_text()
