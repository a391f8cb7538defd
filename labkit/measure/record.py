"""The lab's committed benchmark record (``benchmarks/results/<date>.json``, written by ``make
bench``) read back for a notebook: where a served request's milliseconds go, stage by stage, as
a stacked bar per server and number of callers, and the figures the notebook's prose cites.

The notebooks show the record rather than measure it again: the breakdown takes minutes and
timed copies of the services, and the point is to read it (the student's own measurements are
the sweep above it in notebook 05)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from labkit.paths import REPO_ROOT, PathLike

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULTS = REPO_ROOT / "benchmarks" / "results"
STAGES = ("decode", "preprocess", "forward", "answer", "batch wait and hop", "HTTP handling",
          "client and transport")


def latest_record(results: PathLike = RESULTS) -> Path:
    """The newest full-mode ``<date>.json`` with a breakdown in ``results``."""
    dated = sorted((path for path in Path(results).glob("*.json") if re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.stem)),
                   reverse=True)
    for path in dated:
        report = json.loads(path.read_text())
        if report.get("mode") == "full" and report.get("breakdown"):
            return path
    raise FileNotFoundError(f"no full-mode benchmark record with a breakdown in {results}: run `make bench`")


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
    colors = plt.get_cmap("tab10").colors
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
