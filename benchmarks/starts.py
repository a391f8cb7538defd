"""What one MLServer start costs: seconds until the model is ready, and memory (``make bench-starts``).

Side by side in one run, round by round, each round in another order (so a slow minute of the
machine hits every row alike):

bare import        ``import torch, timm, mlserver`` in a fresh Python, timed inside it (the
                   interpreter's start and exit are not a server's): what every start imports;
workers 0          tinyvit/ with ``parallel_workers: 0``: the model in MLServer's main process;
workers 1          tinyvit/ as its folder configures it (one worker): the main process imports
                   serve-model.py only to find the class, torch only in the worker;
workers 1, torch   the same service with ``import torch`` and ``import timm.data`` at the top of
at the top         serve-model.py, as the course text writes a service: the main process
                   imports torch as well, and never runs the model;
workers 2          tinyvit/ with two workers (notebook 05);
OpenVINO runtime   runtimes/tinyvit-openvino/ as shipped (one worker; notebook 04), which
                   imports no torch: its preprocessing runs in NumPy and PIL;
OpenVINO runtime,  the same with ``import torch`` and ``import timm.data`` first in ``load()``,
torch imported    as the runtime did before 2026-12-06 (timm's transform in torch).

The bare import also records its process's PSS after the import: the floor of any server
that imports the same.

Per server: seconds from ``ModelServer.start()`` until ``/v2/models/<name>/ready`` answers (what
a student waits for after running a start cell), and PSS of the server's process tree after one
request. The report gives the median per row and its ratio to the bare import, as JSON and
markdown in benchmarks/results/starts-<date>.*. Measure on a quiet machine: PSS splits the pages
a process shares with others, so other torch processes beside it make a server look lighter
(this script itself never imports torch).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labkit.client import infer, load_image, pixels_request
from labkit.paths import DEFAULT_CHECKPOINT
from labkit.serving.processes import process_tree, total_memory
from labkit.serving.server import ModelServer
from labkit.model.export import DEFAULT_ONNX, verified_record
from labkit.workspace import lab_service_copy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks, run as a script
from benchmarks import record  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BARE = "bare import"
# Where the course text's style puts torch: at the top of the service file.
TOP_IMPORTS = "import timm.data  # noqa: F401 (at the top, as the course text writes it)\nimport torch  # noqa: F401\n"


# Seconds of the import, then the PSS (kB) of the process that did nothing else.
IMPORTS = ("import time; started = time.perf_counter(); import torch, timm, mlserver; "
           "seconds = time.perf_counter() - started; "
           "pss = next(line.split()[1] for line in open('/proc/self/smaps_rollup') if line.startswith('Pss:')); "
           "print(seconds, pss)")


def bare_import() -> dict:
    """Seconds of ``import torch, timm, mlserver`` in a fresh Python, and its PSS (MB) after it:
    the floor of any server that imports them."""
    done = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True)
    seconds, pss_kb = done.stdout.split()[-2:]
    return {"ready_s": float(seconds), "pss_mb": int(pss_kb) / 1024}


def checkpoint_is_random(path: Path) -> bool:
    """Asked in a child process: reading the checkpoint's metadata imports torch."""
    code = f"from labkit.model.weights import is_random; print(is_random({str(path)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()[-1] == "True"


def torch_at_the_top(folder: Path, checkpoint: Path) -> Path:
    """A copy of the lab's service whose serve-model.py imports torch at the top."""
    copy = lab_service_copy(folder, checkpoint=checkpoint, with_settings=True)
    service = copy / "serve-model.py"
    text = service.read_text()
    anchor = "import logging\n"
    assert anchor in text, "tinyvit/serve-model.py no longer starts its imports with 'import logging'"
    service.write_text(text.replace(anchor, anchor + TOP_IMPORTS, 1))
    return copy


# The OpenVINO runtime as it was before 2026-12-06: torch and timm imported in load(), where the
# model runs (the worker), not at the top (MLServer's main process imports this file too).
WITH_TORCH = """from labkit.runtimes.engines import OpenVINOTinyViT


class OpenVINOWithTorch(OpenVINOTinyViT):
    async def load(self) -> bool:
        import timm.data  # noqa: F401
        import torch  # noqa: F401

        return await super().load()
"""


def openvino_with_torch(folder: Path) -> Path:
    """runtimes/tinyvit-openvino/ with a runtime that imports torch and timm in ``load()``."""
    folder.mkdir(parents=True)
    settings = json.loads((REPO / "runtimes" / "tinyvit-openvino" / "model-settings.json").read_text())
    settings.update(name="tinyvit-openvino-torch", implementation="with_torch.OpenVINOWithTorch")
    (folder / "model-settings.json").write_text(json.dumps(settings))
    (folder / "settings.json").write_text((REPO / "runtimes" / "tinyvit-openvino" / "settings.json").read_text())
    (folder / "with_torch.py").write_text(WITH_TORCH)
    return folder


def one_start(folder: Path, workers: int | None, weights: Path) -> dict:
    """Seconds until ready and the tree's PSS (MB) after one request, for one server."""
    options = {} if workers is None else {"parallel_workers": workers}  # None: as the folder says
    server = ModelServer(folder, weights=weights, http_port=0, grpc_port=0, metrics_port=0, **options)
    started = time.monotonic()
    server.start(progress=False)
    try:
        ready = time.monotonic() - started
        infer(server.infer_url, pixels_request([load_image()]))
        pss = total_memory(process_tree(server.process.pid)) / 2**20
    finally:
        server.stop()
    return {"ready_s": ready, "pss_mb": pss}


def run(rounds: int, checkpoint: Path, rows: list[str] | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-starts-") as scratch:
        top = torch_at_the_top(Path(scratch) / "tinyvit-top-imports", checkpoint)
        onnx = DEFAULT_ONNX
        with_torch = openvino_with_torch(Path(scratch) / "tinyvit-openvino-torch")
        servers = {"workers 0": ("tinyvit", 0, checkpoint), "workers 1": ("tinyvit", 1, checkpoint),
                   "workers 1, torch at the top": (top, 1, checkpoint), "workers 2": ("tinyvit", 2, checkpoint),
                   "OpenVINO runtime": (REPO / "runtimes" / "tinyvit-openvino", None, onnx),
                   "OpenVINO runtime, torch imported": (with_torch, None, onnx)}
        if rows is not None:
            servers = {name: servers[name] for name in rows}
        if any(weights == onnx for _, _, weights in servers.values()):
            verified_record(onnx)  # NotVerified says to run `make onnx` (exporting would import torch here)
        measured: dict[str, list[dict]] = {BARE: [], **{name: [] for name in servers}}
        order = [BARE, *servers]
        for round_number in range(rounds):
            shift = round_number % len(order)
            for name in order[shift:] + order[:shift]:
                if name == BARE:
                    measured[BARE].append(bare_import())
                else:
                    folder, workers, weights = servers[name]
                    measured[name].append(one_start(Path(folder), workers, weights))
    return measured


def summary(measured: dict) -> dict:
    bare = statistics.median(sample["ready_s"] for sample in measured[BARE])
    table = {}
    for name, samples in measured.items():
        ready = statistics.median(sample["ready_s"] for sample in samples)
        row = {"ready_s": round(ready, 2), "ready_over_bare_import": round(ready / bare, 2),
               "ready_s_each": [round(sample["ready_s"], 2) for sample in samples]}
        row["pss_mb"] = round(statistics.median(sample["pss_mb"] for sample in samples), 1)
        table[name] = row
    return table


def markdown(report: dict) -> str:
    lines = [f"# MLServer starts, {report['date']} ({report['rounds']} round(s), {report['weights']} weights)", "",
             "| row | ready (s, median) | ready / bare import | PSS after one request (MB) | each round (s) |",
             "|---|---:|---:|---:|---|"]
    for name, row in report["rows"].items():
        pss = f"{row['pss_mb']:.0f}" if "pss_mb" in row else ""
        each = ", ".join(f"{value:.1f}" for value in row["ready_s_each"])
        lines.append(f"| {name} | {row['ready_s']:.1f} | {row['ready_over_bare_import']:.2f} | {pss} | {each} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", nargs="*", help="only these server rows (the bare import always runs)")
    parser.add_argument("--out", type=Path, default=record.RESULTS)
    args = parser.parse_args(argv)
    checkpoint = DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        parser.error(f"no checkpoint at {checkpoint}: run `make weights` first")
    today = datetime.date.today().isoformat()
    report = {"date": today, "rounds": args.rounds,
              "weights": "random" if checkpoint_is_random(checkpoint) else "pretrained",
              "rows": summary(run(args.rounds, checkpoint, args.rows))}
    record.write(args.out, f"starts-{today}", report, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
