"""labkit.measure.record: the committed benchmark record read back for notebook 05's plot."""

import json
import re

import matplotlib
import pytest

from labkit.measure import record
from labkit.paths import REPO_ROOT

SOURCES = REPO_ROOT / "notebooks" / "source"

matplotlib.use("Agg")


def test_the_cited_record_is_a_full_run_with_the_breakdown_and_the_peers_and_the_notebooks_cite_it():
    report = json.loads(record.CITED.read_text())
    assert report["mode"] == "full" and report["breakdown"]
    assert {"triton_openvino", "triton_openvino_rest", "litserve_openvino_rest"} <= set(report["rows"])
    for notebook in ("04_inference_runtimes", "05_scaling"):
        source = (SOURCES / f"{notebook}.py").read_text()
        assert "record.CITED" in source, notebook
        # Every serving record the prose names is the one the notebook shows (starts-<date> and
        # the other benchmarks' records are other measurements).
        named = set(re.findall(r"benchmarks/results/(\d{4}-\d{2}-\d{2})\.(?:md|json)", source))
        assert named <= {record.CITED.stem}, (notebook, named)


def test_the_committed_record_gives_a_stacked_bar_per_row_that_adds_up():
    path = record.CITED
    rows = json.loads(path.read_text())["breakdown"]
    table = record.breakdown_table(path)
    assert len(table) == len(rows) >= 4
    # The stages of a request add up to what its client waited (each residual is a difference).
    for row in table.itertuples():
        stages = table.loc[row.Index, list(record.STAGES)].fillna(0).sum()
        assert stages == pytest.approx(row.client_mean_ms, abs=0.5), row
    assert table["HTTP handling"].isna().tolist() == [row["transport"] == "grpc" for row in rows]
    figure = record.plot_breakdown(table)
    [axes] = figure.axes
    assert len(axes.patches) == len(record.STAGES) * len(table)
    assert [text.get_text() for text in axes.get_legend().get_texts()] == list(record.STAGES)


def test_notebook_04s_reading_of_the_engines_holds_for_the_cited_record():
    table = record.engines_table(record.CITED)
    assert list(table.index) == ["PyTorch", "ONNX Runtime", "OpenVINO"]
    assert (table.loc["PyTorch", [column for column in table if column.endswith("vs PyTorch")]] == 1).all()
    # "PyTorch gains more from a batch than the two engines do"
    gain = table["in process, best batch"] / table["in process, batch 1"]
    assert gain["PyTorch"] > max(gain["ONNX Runtime"], gain["OpenVINO"]), gain
    # "further apart served than alone": about half kept by PyTorch, four fifths by the engines
    kept = table["served, 4 callers"] / table["in process, best batch"]
    assert kept["PyTorch"] == pytest.approx(0.5, abs=0.05) and kept.drop("PyTorch").between(0.75, 0.85).all(), kept
    engines = table.drop("PyTorch")
    assert (engines["served, 4 callers, vs PyTorch"] > engines["in process, best batch, vs PyTorch"]).all()


def test_notebook_05s_reading_of_the_peers_holds_for_the_cited_record():
    table = record.peers_table(record.CITED).set_index(["server", "transport", "callers"])
    assert len(table) == 10 and table.notna().all().all()
    rate, cpu = table["images_per_s"], table["server_cpu_ms_per_image"]
    mlserver, triton, litserve = "MLServer, tuned", "NVIDIA Triton", "LitServe"
    # gRPC: level at one caller, Triton ahead at eight with less server CPU per image
    assert rate[mlserver, "gRPC", 1] == pytest.approx(rate[triton, "gRPC", 1], rel=0.05)
    assert rate[triton, "gRPC", 8] > rate[mlserver, "gRPC", 8] and cpu[triton, "gRPC", 8] < cpu[mlserver, "gRPC", 8]
    # REST: MLServer well ahead of both (here: at least 1.5 times), at both levels
    for level in (1, 8):
        assert rate[mlserver, "REST", level] > 1.5 * max(rate[triton, "REST", level], rate[litserve, "REST", level])
    # memory: the other two about half of MLServer's
    memory = table["memory_mb"].groupby(level="server").first()
    assert (memory.drop(mlserver) / memory[mlserver]).between(0.4, 0.6).all(), memory


def test_the_peers_table_leaves_out_what_the_record_lacks(tmp_path):
    report = json.loads(record.CITED.read_text())
    for key in ("triton_openvino", "triton_openvino_rest", "litserve_openvino_rest"):
        del report["rows"][key]
    path = tmp_path / "2026-12-07.json"
    path.write_text(json.dumps(report))
    assert set(record.peers_table(path)["server"]) == {"MLServer, tuned"}


def test_the_committed_records_the_notebooks_read_are_of_their_declared_format():
    # Issue 42: the benchmarks and this module shared the record's format by convention only.
    assert record.format_problems("serving", json.loads(record.CITED.read_text())) == []
    for path in (record.SHARED_CPU, *record.SHARED_CPU_SINCE):
        assert record.format_problems("shared-cpu", json.loads(path.read_text())) == [], path


def test_the_shared_cpu_summary_takes_the_comparisons_measured_again_since():
    # 05's REST/gRPC was first measured with gzip off, which the student's server does not have.
    summary = record.shared_cpu_summary()
    first = json.loads(record.SHARED_CPU.read_text())["comparisons"]
    since = json.loads(record.SHARED_CPU_SINCE[0].read_text())["comparisons"]
    assert set(since) <= set(first) and summary["ratios"] == sum(len(c["ratios"]) for c in first.values()
                                                                 if c["notebook"][:1].isdigit())
    assert since["05 REST or gRPC"]["ratios"]["gRPC / REST"]["quiet"] > 1.3  # gzip on: gRPC well ahead


def test_a_benchmark_cannot_write_a_record_the_notebooks_cannot_read(tmp_path):
    from benchmarks import record as writer

    report = json.loads(record.CITED.read_text())
    del report["rows"]["tuned"]["8"]["p50_ms"]
    del report["breakdown"][0]["stages_ms"]
    with pytest.raises(ValueError, match=r"rows\['tuned'\]\['8'\] has no 'p50_ms'.*breakdown\[0\] has no 'stages_ms'"):
        writer.write(tmp_path, "serving", report, kind="serving")
    assert not list(tmp_path.iterdir())  # nothing written
    shared = json.loads(record.SHARED_CPU.read_text())
    assert writer.write(tmp_path, "shared", shared, kind="shared-cpu").is_file()
    del next(iter(shared["comparisons"].values()))["notebook"]
    with pytest.raises(ValueError, match="has no 'notebook'"):
        writer.write(tmp_path, "shared-2", shared, kind="shared-cpu")


def test_05s_model_answer_quotes_the_sweep_record_it_names():
    # Issue 40: the model answer asked for numbers from the table and quoted none; the numbers it
    # quotes are a committed run's (make bench-sweep), rounded as the notebook's table shows them.
    source = (SOURCES / "05_scaling.py").read_text()
    answer = source[source.index("answer id=scaling-justification"):]
    answer = answer[:answer.index("\n\n")]
    named = re.search(r"benchmarks/results/(sweep-[\d-]+)\.md", answer).group(1)
    report = json.loads((REPO_ROOT / "benchmarks" / "results" / f"{named}.json").read_text())
    at_8 = {row["configuration"]: row for row in report["rows"] if row["concurrency"] == 8}
    assert f"{report['budget_ms']:.0f} ms" in answer and report["pick"] == "workers=2 no batching"
    busiest = max(row["others_cpu_share"] for row in report["every_round"])
    assert f"at most {100 * busiest:.0f} % of the CPU" in answer  # hog02: it said "a quiet machine"
    for row in at_8.values():
        assert f"{row['throughput_rps']:.1f}" in answer and f"{row['p95_ms']:.0f}" in answer, row
