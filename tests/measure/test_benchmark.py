"""benchmarks/serving.py in quick mode: every row, the ratios, the report files;
benchmarks/starts.py on one row; benchmarks/freed_memory.py on one server; benchmarks/breakdown.py
briefly."""

import json
import subprocess
import sys

import pytest

from benchmarks import peers
from tests.helpers.lab import REPO

pytestmark = pytest.mark.slow


def test_quick_benchmark_produces_every_row_and_the_ratios(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/serving.py", "--quick", "--seconds", "0.7",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)  # a guard against a hang: on a loaded machine the torch rows take minutes
    assert done.returncode == 0, done.stderr[-3000:]
    [report_file] = tmp_path.glob("*.json")
    report = json.loads(report_file.read_text())
    served = ("naive", "course_text", "tuned", "tuned_rest", "tuned_rest_gzip", "tuned_onnxruntime",
              "tuned_onnxruntime_rest", "tuned_openvino", "tuned_openvino_rest", "tuned_onnxruntime_top5",
              "tuned_onnxruntime_top5_rest")
    # The peers' rows where `make peers` built their environments; else the reason, in the report.
    triton = () if peers.missing("triton") else ("triton_openvino", "triton_openvino_rest")
    litserve = () if peers.missing("litserve") else ("litserve_openvino_rest",)
    assert set(report["rows"]) == {"limit", *served, *triton, *litserve}
    assert set(report["peers"]) == {"triton", "litserve"}
    assert report["peers"]["triton"].startswith("measured") == bool(triton)
    assert report["peers"]["litserve"].startswith("measured") == bool(litserve)
    limit = report["rows"]["limit"]
    by_backend = limit["images_per_s_by_backend_and_batch"]
    assert set(by_backend) == {"pytorch_eager", "onnxruntime", "openvino"}  # torch.compile: full mode only
    # The limit is the best backend at its best batch size.
    assert limit["images_per_s"] == max(max(rates.values()) for rates in by_backend.values()) > 0
    assert limit["backend"] in by_backend and limit["batch1_p50_ms"] > 0
    for row in (*served, *triton, *litserve):
        assert set(report["rows"][row]) == {"1", "8"}  # quick mode: one caller and the targets' eight
        assert all(level["images_per_s"] > 0 and level["p95_ms"] >= level["p50_ms"]
                   for level in report["rows"][row].values())
    # The CPU each server process spent per image, and the load generator's (every MLServer row, the peers).
    for row in (*served, *triton, *litserve):
        cpu = report["rows"][row]["8"]["cpu_ms_per_image"]
        assert cpu["load generator"] > 0 and sum(value for name, value in cpu.items() if name != "load generator") > 1
    assert report["rows"]["tuned"]["8"]["cpu_ms_per_image"]["main"] > 1  # parallel_workers 0: the model is there
    assert set(report["ratios"]) == {"tuned_over_limit", "tuned_over_naive", "tuned_over_course_text",
                                     "tuned_onnxruntime_over_tuned", "tuned_openvino_over_tuned",
                                     "tuned_openvino_over_limit",
                                     *(["tuned_openvino_over_triton_openvino",
                                        "tuned_openvino_rest_over_triton_openvino_rest"] if triton else []),
                                     *(["tuned_openvino_rest_over_litserve_openvino_rest"] if litserve else [])}
    # The targets: the served best against the limit, measured in interleaved rounds.
    best = report["served_best"]
    assert best["server"] == "tinyvit-openvino" and len(best["rounds"]) == 1
    round_ = best["rounds"][0]
    assert best["served_over_limit_c8"] == round_["served_over_limit_c8"] > 0
    # Each figure is rounded to 0.1 ms on its own: the gap may differ from their difference by 0.1.
    assert round_["served_p50_c1_minus_in_process_ms"] == pytest.approx(
        round_["served_c1_p50_ms"] - round_["in_process_batch1_p50_ms"], abs=0.15)
    assert set(report["targets"]) == {"served_best_over_limit_c8", "served_best_p50_c1_minus_in_process_ms",
                                      "tuned_over_naive_c8"}
    for values in report["ratios"].values():
        assert set(values) == {"1", "8"} and all(value > 0 for value in values.values())
    assert report["machine"]["cores"] >= 1
    memory = report["memory_pss_mb"]
    assert set(memory) == {"notebook_kernel", "naive", "course_text", "tuned", "tuned_onnxruntime", "tuned_openvino",
                           *(["triton_openvino"] if triton else []), *(["litserve_openvino"] if litserve else [])}
    # A served TinyViT holds at least its 21 MB of weights; a kernel that imported labkit, torch.
    assert all(value > 50 for value in memory.values()), memory
    table = (tmp_path / report_file.name.replace(".json", ".md")).read_text()
    assert "| (d) MLServer tuned, gRPC | 8 |" in table and "| (e) tuned, OpenVINO, gRPC | 8 |" in table
    assert "| onnxruntime | " in table
    assert ("| (f) Triton (PyTriton), OpenVINO, gRPC | 8 |" in table) == bool(triton)
    assert ("| (f) LitServe, OpenVINO, REST | 8 |" in table) == bool(litserve)
    assert "| served_best_over_limit_c8 | >= 0.8 |" in table


def test_the_start_benchmark_times_a_start_beside_the_bare_import(tmp_path):
    # One server row (each start costs 10-20 s): the course text's service style, torch at the top.
    row = "workers 1, torch at the top"
    done = subprocess.run([sys.executable, "benchmarks/starts.py", "--rounds", "1", "--rows", row,
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [report_file] = tmp_path.glob("starts-*.json")
    rows = json.loads(report_file.read_text())["rows"]
    assert set(rows) == {"bare import", row}
    assert rows["bare import"]["ready_over_bare_import"] == 1.0
    # The floor of any server: what the import alone holds (torch alone is over 300 MB).
    assert rows["bare import"]["pss_mb"] > 300
    assert rows[row]["ready_s"] > 0 and rows[row]["pss_mb"] > 100 and len(rows[row]["ready_s_each"]) == 1
    assert f"| {row} |" in (tmp_path / report_file.name.replace(".json", ".md")).read_text()


def test_the_freed_memory_benchmark_measures_both_arms_side_by_side(tmp_path):
    # Notebook 05's two workers with batching, freed memory returned and kept, 3 s of load each.
    server = "two workers, batching"
    done = subprocess.run([sys.executable, "benchmarks/freed_memory.py", "--rounds", "1", "--seconds", "3",
                           "--servers", server, "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [report_file] = tmp_path.glob("freed-memory-*.json")
    report = json.loads(report_file.read_text())
    assert set(report["rows"]) == {f"{server}, returned", f"{server}, kept"}
    for row in report["rows"].values():
        # A server with two torch workers holds well over a bare torch import, and answered every request.
        assert row["errors"] == 0 and row["throughput_rps"] > 0 and row["peak_pss_mb"] > 750
        assert len(row["peak_pss_mb_each"]) == len(row["throughput_rps_each"]) == 1
    assert set(report["ratios"][server]) == {"peak_pss_mb returned/kept", "final_pss_mb returned/kept",
                                             "throughput_rps returned/kept", "p95_ms returned/kept"}
    assert f"| {server}, kept |" in (tmp_path / report_file.name.replace(".json", ".md")).read_text()


def test_the_breakdown_accounts_for_a_request_stage_by_stage(tmp_path):
    # Two servers, a second of load per row at 2 callers: the stages, and the CPU of each process;
    # the model in the main process (the tuned settings) and in a worker.
    done = subprocess.run([sys.executable, "benchmarks/breakdown.py", "--seconds", "1", "--concurrency", "2",
                           "--configurations", "OpenVINO, tuned", "PyTorch, tuned, 1 worker", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [report_file] = tmp_path.glob("breakdown-*.json")
    rows = json.loads(report_file.read_text())["rows"]
    assert [(row["configuration"], row["transport"]) for row in rows] == [
        ("OpenVINO, tuned", "grpc"), ("OpenVINO, tuned", "rest"),
        ("PyTorch, tuned, 1 worker", "grpc"), ("PyTorch, tuned, 1 worker", "rest")]
    for row in rows:
        stages = row["stages_ms"]
        measured = [stages[name] for name in ("decode", "preprocess", "forward", "answer")]
        assert all(value > 0 for value in measured) and stages["forward"] < row["client_mean_ms"], row
        # What is left between the clocks is not negative (beyond rounding): they nest.
        residuals = ["batch wait and hop", "client and transport"] + (["HTTP handling"] if row["transport"] == "rest"
                                                                      else [])
        assert set(stages) == {"decode", "preprocess", "forward", "answer", *residuals}, stages
        assert all(stages[name] > -1.0 for name in residuals), stages
        cpu = row["cpu_ms_per_image"]
        # The kernel counts CPU time in ticks of 10 ms: the main process's share of a handful of
        # requests beside a worker can round to 0 (a CI run under load served 2 in its second).
        assert row["avg_batch"] >= 1 and min(cpu.values()) >= 0, row
        # Where the model runs, the CPU goes: a forward pass is tens of milliseconds here.
        if "worker" in row["configuration"]:
            assert cpu["worker"] > cpu["main"], row
        else:
            assert cpu["main"] > 0 and cpu["worker"] == 0, row
    assert "| rest | 2 |" in (tmp_path / report_file.name.replace(".json", ".md")).read_text()


def test_the_sweep_benchmark_runs_the_notebooks_grid_and_pick():
    # make bench-sweep's record is what 05's model answer quotes: its grid, budget and pick must
    # be the notebook's own (full mode: 1 and 8 callers).
    import pandas as pd

    from benchmarks import sweep

    source = (REPO / "notebooks" / "source" / "05_scaling.py").read_text()
    assert "for workers in (1, 2)" in source and "for size, wait in ((1, 0.0), (8, 0.01))" in source
    assert "concurrencies = [8] if quick_mode() else [1, 8]" in source
    assert "budget_ms = float(np.ceil(at_8.p95_ms.median() / 50) * 50)" in source
    grid = sweep.grid()
    assert len(grid) == 8 and {(row["parallel_workers"], row["max_batch_size"], row["max_batch_time"],
                                row["concurrency"]) for row in grid} == {
        (workers, size, wait, callers) for workers in (1, 2) for size, wait in ((1, 0.0), (8, 0.01))
        for callers in (1, 8)}
    table = pd.DataFrame({"throughput_rps": [10.0, 20.0, 30.0], "p95_ms": [100.0, 200.0, 300.0]}, index=[4, 5, 6])
    assert sweep.pick(table, 250.0) == 5 and sweep.pick(table, 50.0) is None
    report = {"date": "2026-12-07", "commit": "abc", "cores": 2, "rounds": 2, "seconds": 15.0,
              "machine": "other processes used 3% of the CPU.", "budget_ms": 250.0, "pick": "workers=2 no batching",
              "findings": ["At 8 callers in your run, two workers served 1.49x what one worker did."],
              "rows": [{"configuration": "workers=2 no batching", "concurrency": 8, "throughput_rps": 22.6,
                        "p50_ms": 395.0, "p95_ms": 686.0, "avg_batch": 1.0, "errors": 0}]}
    text = sweep.markdown(report)
    assert "| workers=2 no batching | 8 | 22.6 | 395 | 686 | 1.0 | 0 |" in text and "p95 <= 250 ms" in text
