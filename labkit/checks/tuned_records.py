"""The record of 05's challenge the student keeps (issue 41): each run of the check writes
``tuned-records/<time>.json`` (the machine, the figures, the settings) and a ``.png`` of where a
request's time went on the student's own server, stage by stage, at one caller and at eight."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.measure import challenge

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RECORDS = "tuned-records"
CALLERS = 8  # the challenge's callers at once
ENGINE_NAMES = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime", "pytorch": "PyTorch"}


def latest_record(folder: str | Path = RECORDS) -> Path:
    """The newest record :func:`tuned_service` wrote into ``folder`` (its ``.json``; the plot is
    the ``.png`` beside it).

    Raises:
        FileNotFoundError: none yet (the check has not run here).
    """
    found = sorted(Path(folder).glob("*.json"))
    if not found:
        raise FileNotFoundError(f"No record in {folder}/ yet: run the challenge's check first.")
    return found[-1]


def tuned_record(folder: str | Path = RECORDS) -> object:
    """The newest record's plot, after one sentence per bar on what it is (for the notebook).

    Args:
        folder: where :func:`tuned_service` keeps its records.

    Raises:
        FileNotFoundError: no record yet.
    """
    from IPython.display import Image

    path = latest_record(folder)
    print(f"{path}:")
    for stage, meaning in STAGE_MEANINGS.items():
        print(f"* {stage}: {meaning}.")
    return Image(str(path.with_suffix(".png")))


def write_record(folder: Path, report: dict, result: challenge.AgainstLimit) -> Path:
    """``folder/<date>T<time>.json`` and ``.png``: the machine, the figures, the settings, the plot."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = folder / f"{stamp}.json"
    last = result.rounds[-1].details
    data = {key: value for key, value in report.items() if key != "lines"}
    data.update({"date": stamp, "machine": {"cores": len(os.sched_getaffinity(0)), "cpu": platform.processor()
                                            or platform.machine()},
                 "limit_images_per_s": round(statistics.median(r.limit_images_per_s for r in result.rounds), 2),
                 "served_images_per_s": round(statistics.median(r.served_images_per_s for r in result.rounds), 2),
                 "stages_ms": stages(last, report["transport"], report["settings"]["model-settings.json"])})
    path.write_text(json.dumps(data, indent=2) + "\n")
    figure = plot_stages(data["stages_ms"], f"{report['server']} ({ENGINE_NAMES[report['engine']]}, "
                                             f"{report['transport']})")
    figure.savefig(path.with_suffix(".png"), dpi=100, bbox_inches="tight")
    return path


# What each bar of the plot is, one sentence each (the notebook prints them under the plot).
STAGE_MEANINGS = {
    "engine's own work": "decoding, preprocessing and the forward pass of the images the request's call held, "
                         "as the engine alone takes for them here (an estimate from its batch of one and of 8)",
    "batch wait and queue": "waiting for a batch to fill or for the model to be free, and with workers the trip to "
                            "a worker and back",
    "HTTP handling": "REST only: reading the request's JSON and writing the answer's",
    "client and transport": "sending and receiving, in the client and the network stack, and gRPC's own handling",
}


def stages(details: dict, transport: str, model_settings: dict | None) -> dict:
    """Mean milliseconds per request by stage, at 1 caller and at ``CALLERS``."""
    one, batch = details["engine_one_image_ms"], details["engine_batch_ms"]
    size = int((model_settings or {}).get("max_batch_size") or 1)
    out = {}
    for key, callers in (("c1", 1), (f"c{CALLERS}", CALLERS)):
        row = details[key]
        images = min(size, callers)  # what one call holds at most under this many callers
        work = one + (batch - one) * (images - 1) / (CALLERS - 1)
        model = row["model_ms"] if np.isfinite(row["model_ms"]) else work
        handler = row["http_ms"] if transport == "rest" and np.isfinite(row["http_ms"]) else model
        out[f"{callers} caller{'s' if callers > 1 else ''}"] = {
            "engine's own work": round(min(work, model), 1),
            "batch wait and queue": round(max(0.0, model - work), 1),
            "HTTP handling": round(max(0.0, handler - model), 1) if transport == "rest" else 0.0,
            "client and transport": round(max(0.0, row["client_mean_ms"] - handler), 1)}
    return out


def plot_stages(stages_ms: dict, title: str) -> Figure:
    """Stacked bars of ``stages()``, one per number of callers."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 2.6))
    rows = list(stages_ms)
    left = np.zeros(len(rows))
    for stage, color in zip(STAGE_MEANINGS, plt.get_cmap("tab10").colors):  # type: ignore[attr-defined]
        width = np.array([stages_ms[row][stage] for row in rows])
        axes.barh(rows, width, left=left, label=stage, color=color)
        left += width
    axes.invert_yaxis()
    axes.set_xlabel("milliseconds per request (mean)")
    axes.set_title(f"Where a request's time went on your server: {title}")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, fontsize="small")
    figure.tight_layout()
    plt.close(figure)
    return figure
