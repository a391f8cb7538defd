"""Where a served request's milliseconds and CPU go (``make bench-breakdown``, issue 27).

The lab's PyTorch service with the serving benchmark's tuned settings (``benchmarks/serving.py``,
``TUNED``), and beside it, one server after another in the same run, the same service with one
setting changed (``CONFIGURATIONS``: the hypotheses of issue 27), each from a scratch copy whose
``predict()`` is timed stage by
stage (``benchmarks/timed_service.py``: the lab's class unchanged, plus timers). The load is the
lab's load generator in this process (``labkit.measure.loadgen``), one JPEG per request, over gRPC
and over REST, at 1 and 8 callers. Per request, mean milliseconds, each from where it is measured:

predict stages        decode, preprocess, forward, answer: the worker's own timers (custom metrics)
batch wait and hop    MLServer's ``model_infer_request_duration`` (the main process, from the
                      request's model lookup to its answer) minus the predict stages: the adaptive
                      batching window and queue, and the hop to the worker and back (pickling)
HTTP handling         REST only: ``rest_server_request_duration_seconds`` of the infer route minus
                      ``model_infer_request_duration``: parsing the JSON body, writing the answer
client and transport  the client's mean latency minus the server's own (REST's handler time, gRPC's
                      ``model_infer_request_duration``: for gRPC this row also holds MLServer's
                      gRPC handling, which MLServer does not time)

and the CPU seconds per image of each process: MLServer's main process, its worker, and the load
generator (this process: it runs on the same two cores). Writes
``benchmarks/results/breakdown-<date>.json`` and ``.md``. Custom metrics need
``parallel_workers`` of at least 1 (MLServer issue #1151), so there is no ``parallel_workers: 0``
row; the stages of that server are the same code.
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

from benchmarks.serving import TUNED  # noqa: E402
from labkit.measure import metrics  # noqa: E402
from labkit.measure.loadgen import payload_body, run_load  # noqa: E402
from labkit.model import weights  # noqa: E402
from labkit.serving.processes import process_tree  # noqa: E402
from labkit.serving.server import ModelServer  # noqa: E402
from labkit.workspace import lab_service_copy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("decode", "preprocess", "forward", "answer")
METRIC = "tinyvit_stage_{}_seconds"
ROLES = ("main", "worker", "load generator")
# Each a change to the tuned server: ModelServer's keyword arguments.
CONFIGURATIONS = {
    "tuned": {},
    # One intra-op thread leaves a core to the main process and the client.
    "tuned, 1 torch thread": {"extra": {"torch_threads": 1}},
    # torch's OpenMP threads wait for work without spinning on a core between calls.
    "tuned, OMP_WAIT_POLICY=PASSIVE": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}},
    # The engine's best batch in process (benchmarks/serving.py, limit) is 4 to 8.
    "tuned, batches of 8 within 10 ms": {"max_batch_size": 8, "max_batch_time": 0.01},
}


def timed_copy(folder: Path, checkpoint: Path) -> Path:
    """The lab's service in ``folder`` with ``timed_service.TimedTinyViT`` as its class."""
    copy = lab_service_copy(folder, checkpoint=checkpoint, with_settings=True)
    shutil.copy(Path(__file__).with_name("timed_service.py"), copy / "timed_service.py")
    settings_file = copy / "model-settings.json"
    settings = json.loads(settings_file.read_text())
    assert settings["implementation"] == "serve-model.TinyViTModel", settings["implementation"]
    settings["implementation"] = "timed_service.TimedTinyViT"
    settings_file.write_text(json.dumps(settings, indent=2))
    return copy


def role(process) -> str:
    """Which part of the server tree a process is (by its command line)."""
    command = " ".join(process.cmdline())
    if "spawn_main" in command:
        return "worker"
    if "mlserver start" in command or command.endswith("/mlserver start"):
        return "main"
    return "other"  # the lab's supervisor, multiprocessing's resource tracker


def cpu_seconds(server_pid: int) -> dict:
    """CPU seconds (user + system) so far, per role, of the server tree and of this process."""
    import psutil

    seconds = dict.fromkeys((*ROLES, "other"), 0.0)
    for process in process_tree(server_pid):
        try:
            times = process.cpu_times()
            seconds[role(process)] += times.user + times.system
        except psutil.Error:
            pass
    own = psutil.Process().cpu_times()
    seconds["load generator"] = own.user + own.system
    return seconds


def rest_infer_seconds(samples) -> tuple[float, float]:
    """(sum, count) of the REST server's durations of the infer route."""
    table = metrics.labelled(samples, f"{metrics.REST_DURATION}_sum")
    counts = metrics.labelled(samples, f"{metrics.REST_DURATION}_count")
    if table.empty:
        return 0.0, 0.0
    return (float(table[table["path"] == metrics.INFER_PATH]["value"].sum()),
            float(counts[counts["path"] == metrics.INFER_PATH]["value"].sum()))


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
           "avg_batch": round(metrics.histogram_mean(before, after, "tinyvit_batch_size", server.name), 2)}
    stages = {stage: ms[stage] for stage in STAGES}
    stages["batch wait and hop"] = served - sum(ms.values())
    if transport == "rest":
        handler_sum = rest_infer_seconds(after)[0] - rest_infer_seconds(before)[0]
        handler_count = rest_infer_seconds(after)[1] - rest_infer_seconds(before)[1]
        handler = 1000 * handler_sum / handler_count
        stages["HTTP handling"] = handler - served
        stages["client and transport"] = client - handler
    else:
        stages["client and transport"] = client - served
    row["stages_ms"] = {name: round(value, 1) for name, value in stages.items()}
    row["cpu_ms_per_image"] = {name: round(1000 * (cpu_after[name] - cpu_before[name]) / images, 1)
                               for name in (*ROLES, "other")}
    return row


def run(seconds: float, concurrencies: tuple, checkpoint: Path, configurations: list[str]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-breakdown-") as scratch:
        folder = timed_copy(Path(scratch) / "tinyvit-timed", checkpoint)
        free = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}
        for name in configurations:
            with ModelServer(folder, weights=checkpoint, **free, **{**TUNED, **CONFIGURATIONS[name]}) as server:
                rows += [{"configuration": name, **one_row(server, transport, concurrency, seconds)}
                         for concurrency in concurrencies for transport in ("grpc", "rest")]
    return rows


def markdown(report: dict) -> str:
    names = [*STAGES, "batch wait and hop", "HTTP handling", "client and transport"]
    lines = [f"# Where a request's time goes, {report['date']} ({report['seconds_per_row']} s per row, "
             f"{report['weights']} weights)", "",
             f"Servers: the lab's PyTorch service, tuned: {report['settings']}, and the changes named; "
             "one JPEG per request; one server after another.", "",
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
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    checkpoint = weights.DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        parser.error(f"no checkpoint at {checkpoint}: run `make weights` first")
    today = datetime.date.today().isoformat()
    report = {"date": today, "seconds_per_row": args.seconds, "settings": {**TUNED, "payload": "jpeg"},
              "weights": "random" if weights.is_random(checkpoint) else "pretrained",
              "rows": run(args.seconds, tuple(args.concurrency), checkpoint, args.configurations)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"breakdown-{today}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"breakdown-{today}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
