"""The lab's committed benchmark record (``benchmarks/results/<date>.json``, written by ``make
bench``) read back for a notebook: where a served request's milliseconds go, stage by stage, as
a stacked bar per server and number of callers (05), MLServer against the servers a user might
pick instead (05), and the engines alone and served (04).

The notebooks show the record rather than measure it again: the breakdown takes minutes and
timed copies of the services, and the point is to read it (the student's own measurements are
the sweep in notebook 05 and the engines' table in 04)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from labkit.paths import REPO_ROOT, PathLike

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULTS = REPO_ROOT / "benchmarks" / "results"
# The record notebooks 04 and 05 show and their prose cites (a full run with the breakdown and
# the peers); a newer record replaces it here together with the prose.
CITED = RESULTS / "2026-12-06.json"
STAGES = ("decode", "preprocess", "forward", "answer", "batch wait and hop", "HTTP handling",
          "client and transport")
# The notebooks' comparisons quiet and beside a process that takes one core (make bench-shared),
# which the machine note cites when a measurement shared the machine.
SHARED_CPU = RESULTS / "shared-cpu-2026-12-07.json"
# Comparisons measured again since, each replacing the one of its name in SHARED_CPU: 05's REST
# and gRPC with MLServer's default gzip on, as the student's scaled/ server has it (the first
# record measured it with the lab's gzip off).
SHARED_CPU_SINCE = (RESULTS / "shared-cpu-2026-12-07-05_REST.json",)


# The declared format of the records this module reads, by kind: the keys it reads, at the
# top and in each row. benchmarks/record.write() refuses a report of a declared kind that lacks
# one (a benchmark cannot drift from what the notebooks read), and tests/measure/test_record.py
# holds the committed records to it.
FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "serving": {"top": ("date", "mode", "machine", "rows", "memory_pss_mb"),
                "served row": ("images_per_s", "p50_ms", "cpu_ms_per_image"),
                "breakdown row": ("configuration", "transport", "concurrency", "images_per_s", "avg_batch",
                                  "client_mean_ms", "stages_ms")},
    "shared-cpu": {"top": ("date", "holds_within", "comparisons"),
                   "comparison": ("notebook", "ratios"),
                   "ratio": ("quiet", "hog", "change", "holds")},
}


def format_problems(kind: str, report: dict) -> list[str]:
    """What ``report``, a record of ``kind`` (a key of ``FORMATS``), lacks of what this module
    reads: one line per missing key, where it is missing; [] when it conforms.

    Raises:
        KeyError: a kind with no declared format.
    """
    declared = FORMATS[kind]

    def lacks(where: str, row: object, part: str) -> list[str]:
        keys = row.keys() if isinstance(row, dict) else ()
        return [f"{where} has no {key!r}" for key in declared[part] if key not in keys]

    found = lacks("the record", report, "top")
    if kind == "serving":
        limit = report.get("rows", {}).get("limit", {})
        if "images_per_s_by_backend_and_batch" not in limit:
            found.append("rows['limit'] has no 'images_per_s_by_backend_and_batch'")
        for name, levels in report.get("rows", {}).items():
            if name != "limit":
                for level, row in levels.items():
                    found += lacks(f"rows[{name!r}][{level!r}]", row, "served row")
        for index, row in enumerate(report.get("breakdown", [])):  # full mode only
            found += lacks(f"breakdown[{index}]", row, "breakdown row")
    else:
        for name, comparison in report.get("comparisons", {}).items():
            found += lacks(f"comparisons[{name!r}]", comparison, "comparison")
            for label, ratio in comparison.get("ratios", {}).items():
                found += lacks(f"comparisons[{name!r}].ratios[{label!r}]", ratio, "ratio")
    return found


def shared_cpu_summary(path: PathLike = SHARED_CPU) -> dict | None:
    """What the shared-CPU record found (with the comparisons measured again since, for the
    lab's own record): how many of its ratios held within its bound beside
    the busy core, of how many, and the one that moved most (label, quiet, beside the hog); the
    records of the comparisons measured again since (``since``); None without the record."""
    try:
        report = json.loads(Path(path).read_text())
        if Path(path) == SHARED_CPU:
            for since in SHARED_CPU_SINCE:
                report["comparisons"].update(json.loads(since.read_text())["comparisons"])
    except (OSError, ValueError):
        return None
    ratios = [(label, ratio) for comparison in report["comparisons"].values()
              if comparison["notebook"][:1].isdigit()  # the notebooks' own, not the reason given for them
              for label, ratio in comparison["ratios"].items()]
    label, worst = max(ratios, key=lambda item: abs(item[1]["change"]))
    measured_since = [again.relative_to(REPO_ROOT).with_suffix(".md").as_posix() for again in SHARED_CPU_SINCE
                      if Path(path) == SHARED_CPU]
    return {"path": Path(path).relative_to(REPO_ROOT).with_suffix(".md").as_posix(), "since": measured_since,
            "ratios": len(ratios),
            "held": sum(ratio["holds"] for _, ratio in ratios), "within": report["holds_within"],
            "worst": (label, worst["quiet"], worst["hog"])}


def breakdown_table(path: PathLike) -> pd.DataFrame:
    """One row per server, transport and number of callers: images/s, the client's mean
    milliseconds, and the mean milliseconds of each stage (``STAGES``; empty where a stage does
    not apply, as HTTP handling over gRPC)."""
    report = json.loads(Path(path).read_text())
    rows = [{"configuration": row["configuration"], "transport": row["transport"], "callers": row["concurrency"],
             "images_per_s": row["images_per_s"], "avg_batch": row["avg_batch"],
             "client_mean_ms": row["client_mean_ms"], **{stage: row["stages_ms"].get(stage) for stage in STAGES}}
            for row in report["breakdown"]]
    return pd.DataFrame(rows)


def plot_breakdown(table: pd.DataFrame) -> Figure:
    """Stacked horizontal bars: a request's mean milliseconds by stage, one bar per row of
    ``breakdown_table``; a negative remainder (the clocks' rounding) is drawn as zero."""
    import matplotlib.pyplot as plt

    labels = [f"{row.configuration}, {row.transport}, {row.callers} caller{'s' if row.callers > 1 else ''}"
              for row in table.itertuples()]
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(table) + 1.5))
    left = pd.Series(0.0, index=table.index)
    colors = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]  # tab10 is a ListedColormap
    for stage, color in zip(STAGES, colors):
        width = table[stage].fillna(0).clip(lower=0)
        axes.barh(labels, width, left=left, label=stage, color=color)
        left += width
    axes.invert_yaxis()
    axes.set_xlabel("milliseconds per request (mean)")
    axes.set_title("Where a served request's time goes (the lab's benchmark record)")
    # Below the bars, not over them (the longest bars reach the right edge).
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / len(table) - 0.08), ncol=4, fontsize="small")
    figure.tight_layout()
    return figure


# The record's rows that compare MLServer with the servers a user might pick instead, all with
# the same engine (OpenVINO), images (JPEG) and answer: row -> (server, transport, memory key).
PEER_ROWS = {
    "tuned_openvino": ("MLServer, tuned", "gRPC", "tuned_openvino"),
    "triton_openvino": ("NVIDIA Triton", "gRPC", "triton_openvino"),
    "tuned_openvino_rest": ("MLServer, tuned", "REST", "tuned_openvino"),
    "triton_openvino_rest": ("NVIDIA Triton", "REST", "triton_openvino"),
    "litserve_openvino_rest": ("LitServe", "REST", "litserve_openvino"),
}


def peers_table(path: PathLike, callers: tuple[int, ...] = (1, 8)) -> pd.DataFrame:
    """MLServer against the other servers of the record, one row per server, transport and number
    of callers: images/s, p50, the CPU milliseconds per image of the server's processes (the load
    generator's left out) and the server's memory after the load (PSS, MB). Rows the record does
    not hold (a peer that could not run where it was made) are left out."""
    report = json.loads(Path(path).read_text())
    memory = report.get("memory_pss_mb", {})
    rows = []
    for key, (server, transport, memory_key) in PEER_ROWS.items():
        for level in callers:
            row = report["rows"].get(key, {}).get(str(level))
            if row:
                cpu = sum(ms for role, ms in row["cpu_ms_per_image"].items() if role != "load generator")
                rows.append({"server": server, "transport": transport, "callers": level,
                             "images_per_s": row["images_per_s"], "p50_ms": row["p50_ms"],
                             "server_cpu_ms_per_image": round(cpu, 1), "memory_mb": memory.get(memory_key)})
    return pd.DataFrame(rows)


# The engines of notebook 04 in the record: its in-process backend, and its tuned server's row (gRPC).
ENGINES = {"PyTorch": ("pytorch_eager", "tuned"), "ONNX Runtime": ("onnxruntime", "tuned_onnxruntime"),
           "OpenVINO": ("openvino", "tuned_openvino")}


def engines_table(path: PathLike, callers: int = 4) -> pd.DataFrame:
    """Images/s of each engine in the record, one row per engine: in process (the benchmark's own
    loop: decode, preprocess, forward; no server) at one image per call and at the engine's best
    batch, and served with the tuned settings over gRPC at ``callers``; each also as a multiple
    of PyTorch's."""
    report = json.loads(Path(path).read_text())
    by_batch = report["rows"]["limit"]["images_per_s_by_backend_and_batch"]
    rows = []
    for engine, (backend, served) in ENGINES.items():
        batches = {int(batch): rate for batch, rate in by_batch[backend].items()}
        best = max(batches, key=lambda batch: batches[batch])
        served_rate = report["rows"][served][str(callers)]["images_per_s"]
        rows.append({"engine": engine, "in process, batch 1": batches[1], "in process, best batch": batches[best],
                     "best batch": best, f"served, {callers} callers": served_rate})
    table = pd.DataFrame(rows).set_index("engine")
    for column in ("in process, batch 1", "in process, best batch", f"served, {callers} callers"):
        table[f"{column}, vs PyTorch"] = table[column] / table.loc["PyTorch", column]
    return table
