"""Where a served request's milliseconds and CPU go (``make bench-breakdown``, issue 27).

The lab's OpenVINO runtime and its PyTorch service with the tuned settings (``benchmarks/tuned.py``),
and beside them, one server after another in the same run, the same with one setting changed
(``CONFIGURATIONS``: the hypotheses of issue 27), each from a scratch folder whose class is timed
stage by stage (``benchmarks/timed_service.py``: the lab's class unchanged, plus timers). The load
is the lab's load generator in this process (``labkit.measure.loadgen``), one JPEG per request,
over gRPC and over REST, at 1 and 8 callers. Per request, mean milliseconds, each from where it is
measured:

predict stages        decode, preprocess, forward, answer: the service's own timers
batch wait and hop    MLServer's ``model_infer_request_duration`` (the main process, from the
                      request's model lookup to its answer) minus the predict stages: the adaptive
                      batching window and the queue for the model, and with a worker the hop to it
                      and back (pickling)
HTTP handling         REST only: ``rest_server_request_duration_seconds`` of the infer route minus
                      ``model_infer_request_duration``: parsing the JSON body, writing the answer
client and transport  the client's mean latency minus the server's own (REST's handler time, gRPC's
                      ``model_infer_request_duration``: for gRPC this row also holds MLServer's
                      gRPC handling, which MLServer does not time)

and the CPU milliseconds per image of each process: MLServer's main process, its worker (if any),
and the load generator (this process: it runs on the same two cores). Writes
``benchmarks/results/breakdown-<date>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.serving, run as a script
from benchmarks import record  # noqa: E402

from benchmarks.cpu import ROLES, cpu_seconds, per_image  # noqa: E402
from benchmarks.tuned import TUNED, verified_onnx  # noqa: E402
from labkit.measure import metrics  # noqa: E402
from labkit.measure.loadgen import payload_body, run_load  # noqa: E402
from labkit.model import weights  # noqa: E402
from labkit.serving.server import ModelServer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STAGES = ("decode", "preprocess", "forward", "answer")
METRIC = "tinyvit_stage_{}_seconds"  # benchmarks/timed_service.py
BATCH_METRIC = "tinyvit_timed_batch_images"
# Each a server: the engine's model folder and ModelServer's keyword arguments on top of the
# benchmark's tuned settings (TUNED); the first of each engine is the tuned server itself, the
# others change one thing (the hypotheses of issue 27).
ENGINES = {"pytorch": ("tinyvit", "TimedTinyViT"), "openvino": ("runtimes/tinyvit-openvino", "TimedOpenVINO")}
CONFIGURATIONS = {
    "OpenVINO, tuned": ("openvino", {}),
    # A worker process: the model leaves the main process, requests cross a pipe (pickled).
    "OpenVINO, tuned, 1 worker": ("openvino", {"parallel_workers": 1}),
    # The batch window: shorter (less wait for a lone caller), longer (gRPC requests reach the
    # batcher a few milliseconds apart, benchmarks/tuned.py).
    "OpenVINO, tuned, batch window 2 ms": ("openvino", {"max_batch_time": 0.002}),
    "OpenVINO, tuned, batch window 10 ms": ("openvino", {"max_batch_time": 0.01}),
    # The compact answer of notebook 03 instead of 21,841 probabilities.
    "OpenVINO, tuned, top-5 answer": ("openvino", {"extra": {"top_k": 5}}),
    "PyTorch, tuned": ("pytorch", {}),
    "PyTorch, tuned, 1 worker": ("pytorch", {"parallel_workers": 1}),
    # One intra-op thread leaves a core to the rest of the server and the client.
    "PyTorch, tuned, 1 torch thread": ("pytorch", {"extra": {"torch_threads": 1}}),
    # torch's OpenMP threads wait for work without spinning on a core between calls.
    "PyTorch, tuned, OMP_WAIT_POLICY=PASSIVE": ("pytorch", {"env": {"OMP_WAIT_POLICY": "PASSIVE"}}),
    # The earlier tuned settings (benchmarks/results/2026-11-28.md).
    "PyTorch, 1 worker, batches of 4 within 5 ms": ("pytorch", {"parallel_workers": 1, "max_batch_size": 4,
                                                                "max_batch_time": 0.005}),
}


def timed_copy(folder: Path, engine: str) -> Path:
    """A scratch model folder serving ``engine`` (a key of ``ENGINES``) through its timed class
    in ``timed_service``: the lab's folder's two JSON files, the implementation renamed."""
    source, implementation = ENGINES[engine]
    folder.mkdir(parents=True)
    for name in ("model-settings.json", "settings.json"):
        shutil.copy(REPO / source / name, folder / name)
    shutil.copy(Path(__file__).with_name("timed_service.py"), folder / "timed_service.py")
    settings_file = folder / "model-settings.json"
    settings = json.loads(settings_file.read_text())
    settings["implementation"] = f"timed_service.{implementation}"
    settings_file.write_text(json.dumps(settings, indent=2))
    return folder


def one_row(server: ModelServer, transport: str, concurrency: int, seconds: float) -> dict:
    """Load at ``concurrency`` over ``transport``; the per-request stages and CPU per image."""
    body = payload_body("jpeg")
    target = ({"url": server.grpc_address, "grpc_model": server.name} if transport == "grpc"
              else {"url": server.infer_url})
    run_load(**target, concurrency=concurrency, duration=30, max_requests=2 * concurrency, body=body,
             progress=False)  # warm-up
    before, cpu_before = metrics.scrape(server.metrics_url), cpu_seconds(server.process.pid)
    load = run_load(**target, concurrency=concurrency, duration=seconds, body=body, progress=False)
    cpu_after, after = cpu_seconds(server.process.pid), metrics.scrape(server.metrics_url)
    ok = load.table[load.table.status == 200]
    if len(ok) != len(load.table) or ok.empty:
        raise RuntimeError(f"{len(load.table) - len(ok)} of {len(load.table)} requests failed ({transport}, "
                           f"C={concurrency})")
    images = len(ok)
    ms = {stage: 1000 * metrics.histogram_mean(before, after, METRIC.format(stage), server.name)
          for stage in STAGES}
    served = 1000 * metrics.histogram_mean(before, after, "model_infer_request_duration", server.name)
    client = float(ok.latency_ms.mean())
    row = {"transport": transport, "concurrency": concurrency, "requests": images,
           "images_per_s": round(load.summary["images_per_s"], 2), "client_mean_ms": round(client, 1),
           "client_p50_ms": round(float(np.median(ok.latency_ms)), 1),
           "avg_batch": round(metrics.histogram_mean(before, after, BATCH_METRIC, server.name), 2)}
    stages = {stage: ms[stage] for stage in STAGES}
    stages["batch wait and hop"] = served - sum(ms.values())
    if transport == "rest":
        handler_sum = metrics.rest_infer_seconds(after)[0] - metrics.rest_infer_seconds(before)[0]
        handler_count = metrics.rest_infer_seconds(after)[1] - metrics.rest_infer_seconds(before)[1]
        handler = 1000 * handler_sum / handler_count
        stages["HTTP handling"] = handler - served
        stages["client and transport"] = client - handler
    else:
        stages["client and transport"] = client - served
    row["stages_ms"] = {name: round(value, 1) for name, value in stages.items()}
    row["cpu_ms_per_image"] = per_image(cpu_before, cpu_after, images)
    return row


def run(seconds: float, concurrencies: tuple, checkpoint: Path, configurations: list[str]) -> list[dict]:
    rows = []
    weights_of = {"pytorch": checkpoint, "openvino": verified_onnx(checkpoint)}
    with tempfile.TemporaryDirectory(prefix="bench-breakdown-") as scratch:
        folders = {engine: timed_copy(Path(scratch) / engine, engine) for engine in ENGINES}
        free = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}
        for name in configurations:
            engine, changes = CONFIGURATIONS[name]
            with ModelServer(folders[engine], weights=weights_of[engine], **free, **{**TUNED, **changes}) as server:
                rows += [{"configuration": name, **one_row(server, transport, concurrency, seconds)}
                         for concurrency in concurrencies for transport in ("grpc", "rest")]
    return rows


def markdown(report: dict) -> str:
    names = [*STAGES, "batch wait and hop", "HTTP handling", "client and transport"]
    lines = [f"# Where a request's time goes, {report['date']} ({report['seconds_per_row']} s per row, "
             f"{report['weights']} weights)", "",
             f"Servers: the lab's OpenVINO runtime and PyTorch service, tuned: {report['settings']}, and the "
             "changes named; one JPEG per request; one server after another.", "",
             "| configuration | transport | C | images/s | avg batch | client mean ms | " + " | ".join(names) + " |",
             "|---|---|---:|---:|---:|---:|" + "---:|" * len(names)]
    for row in report["rows"]:
        cells = [f"{row['stages_ms'][name]:.1f}" if name in row["stages_ms"] else "" for name in names]
        lines.append(f"| {row['configuration']} | {row['transport']} | {row['concurrency']} | "
                     f"{row['images_per_s']:.1f} | {row['avg_batch']:.1f} | {row['client_mean_ms']:.1f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "| CPU ms per image | transport | C | " + " | ".join(ROLES) + " |",
              "|---|---|---:|" + "---:|" * len(ROLES)]
    for row in report["rows"]:
        lines.append(f"| {row['configuration']} | {row['transport']} | {row['concurrency']} | "
                     + " | ".join(f"{row['cpu_ms_per_image'][name]:.1f}" for name in ROLES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="load per row")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--configurations", nargs="+", choices=list(CONFIGURATIONS), default=list(CONFIGURATIONS))
    parser.add_argument("--out", type=Path, default=record.RESULTS)
    args = parser.parse_args(argv)
    checkpoint = weights.DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        parser.error(f"no checkpoint at {checkpoint}: run `make weights` first")
    today = datetime.date.today().isoformat()
    report = {"date": today, "seconds_per_row": args.seconds, "settings": {**TUNED, "payload": "jpeg"},
              "weights": "random" if weights.is_random(checkpoint) else "pretrained",
              "rows": run(args.seconds, tuple(args.concurrency), checkpoint, args.configurations)}
    record.write(args.out, f"breakdown-{today}", report, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
