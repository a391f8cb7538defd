"""What handing freed memory back costs and saves (``make bench-memory``): the lab's service
under a batching load with ``return_freed_memory`` on (tinyvit/ as shipped:
``tinyvit/freed_memory.py``) and off, side by side in one run.

Servers (each with freed memory returned and kept):

two workers, batching   notebook 05's ``scaled/`` settings: ``parallel_workers: 2``, batches of
                        up to 8 within 10 ms, the configuration at notebook 05's memory peak;
one process, tuned      the lab's tuned settings (``benchmarks/tuned.py``): ``parallel_workers:
                        0``, batches of up to 8 within 4 ms.

Each server starts fresh, is warmed up (one request per caller), then gets ``seconds`` of
closed-loop load from 8 callers over gRPC with the cat as JPEG bytes (notebook 05's
transports cell), while the PSS of its whole process tree is sampled every 0.5 s. Rounds are
interleaved, each in another order, so a slow minute of the machine hits every row alike.
Per row: median peak and final PSS, throughput, p50 and p95, failed requests; per server, the
ratios returned / kept. Writes benchmarks/results/freed-memory-<date>.json and .md. Measure
on a quiet machine: PSS splits the pages a process shares with others.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import threading
from pathlib import Path

from labkit.measure.loadgen import payload_body, run_load
from labkit.paths import DEFAULT_CHECKPOINT
from labkit.serving.processes import process_tree, total_memory
from labkit.serving.server import ModelServer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks import record  # noqa: E402
from benchmarks.tuned import TUNED  # noqa: E402

SERVERS = {"two workers, batching": {"parallel_workers": 2, "max_batch_size": 8, "max_batch_time": 0.01},
           "one process, tuned": TUNED}
ARMS = {"returned": True, "kept": False}
CONCURRENCY = 8


def one_load(settings: dict, returned: bool, seconds: float, body: bytes) -> dict:
    """Peak and final PSS (MB) of a fresh server's tree under ``seconds`` of load, and the load's summary."""
    server = ModelServer("tinyvit", **settings, extra={"return_freed_memory": returned},
                         http_port=0, grpc_port=0, metrics_port=0)
    server.start(progress=False)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], total_memory(process_tree(server.process.pid)))

    try:
        target = {"url": server.grpc_address, "grpc_model": server.name, "body": body, "progress": False}
        run_load(concurrency=CONCURRENCY, duration=30, max_requests=CONCURRENCY, **target)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            load = run_load(concurrency=CONCURRENCY, duration=seconds, **target).summary
        finally:
            done.set()
            sampler.join()
        final = total_memory(process_tree(server.process.pid))
    finally:
        server.stop()
    return {"peak_pss_mb": max(peak[0], final) / 2**20, "final_pss_mb": final / 2**20,
            "throughput_rps": load["throughput_rps"], "p50_ms": load["p50_ms"], "p95_ms": load["p95_ms"],
            "errors": load["errors"], "requests": load["requests"]}


def run(rounds: int, seconds: float, servers: list[str]) -> dict:
    body = payload_body("jpeg")
    order = [(server, arm) for server in servers for arm in ARMS]
    measured: dict[str, list[dict]] = {f"{server}, {arm}": [] for server, arm in order}
    for round_number in range(rounds):
        shift = round_number % len(order)
        for server, arm in order[shift:] + order[:shift]:
            measured[f"{server}, {arm}"].append(one_load(SERVERS[server], ARMS[arm], seconds, body))
    return measured


def summary(measured: dict, servers: list[str]) -> dict:
    rows = {}
    for name, samples in measured.items():
        rows[name] = {key: round(statistics.median(sample[key] for sample in samples), 1)
                      for key in ("peak_pss_mb", "final_pss_mb", "throughput_rps", "p50_ms", "p95_ms")}
        rows[name]["errors"] = sum(sample["errors"] for sample in samples)
        rows[name]["peak_pss_mb_each"] = [round(sample["peak_pss_mb"]) for sample in samples]
        rows[name]["throughput_rps_each"] = [round(sample["throughput_rps"], 1) for sample in samples]
    ratios = {}
    for server in servers:
        returned, kept = rows[f"{server}, returned"], rows[f"{server}, kept"]
        ratios[server] = {f"{key} returned/kept": round(returned[key] / kept[key], 3)
                          for key in ("peak_pss_mb", "final_pss_mb", "throughput_rps", "p95_ms")}
    return {"rows": rows, "ratios": ratios}


def markdown(report: dict) -> str:
    lines = [f"# Freed memory returned or kept, {report['date']} ({report['rounds']} round(s) of "
             f"{report['seconds']:g} s, {CONCURRENCY} callers, gRPC, JPEG)", "",
             "| server, freed memory | peak PSS (MB) | PSS at the end (MB) | images/s | p50 (ms) | p95 (ms) "
             "| failed | peak each round (MB) | images/s each round |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, row in report["rows"].items():
        peaks = ", ".join(str(value) for value in row["peak_pss_mb_each"])
        rates = ", ".join(str(value) for value in row["throughput_rps_each"])
        lines.append(f"| {name} | {row['peak_pss_mb']:.0f} | {row['final_pss_mb']:.0f} | {row['throughput_rps']:.1f} "
                     f"| {row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['errors']} | {peaks} | {rates} |")
    lines += ["", "| server | peak PSS | PSS at the end | images/s | p95 |", "|---|---:|---:|---:|---:|"]
    for server, ratio in report["ratios"].items():
        lines.append(f"| {server}: returned / kept | " + " | ".join(f"{value:.2f}" for value in ratio.values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20, help="seconds of load per server")
    parser.add_argument("--servers", nargs="*", choices=list(SERVERS), default=list(SERVERS))
    parser.add_argument("--out", type=Path, default=record.RESULTS)
    args = parser.parse_args(argv)
    if not DEFAULT_CHECKPOINT.is_file():
        parser.error(f"no checkpoint at {DEFAULT_CHECKPOINT}: run `make weights` first")
    report = {"date": datetime.date.today().isoformat(), "rounds": args.rounds, "seconds": args.seconds,
              **summary(run(args.rounds, args.seconds, args.servers), args.servers)}
    record.write(args.out, f"freed-memory-{report['date']}", report, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
