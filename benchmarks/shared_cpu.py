"""Each comparison the notebooks measure, quiet and beside a CPU hog that takes one core, in one
run: does the ratio that carries the comparison's conclusion hold on a shared CPU? Writes
``benchmarks/results/shared-cpu-<date>.json`` and ``.md`` (``make bench-shared``).

    python benchmarks/shared_cpu.py                        # every comparison, 2 rounds per condition
    python benchmarks/shared_cpu.py --only 02 --rounds 1   # one comparison, a quick look

The hog is what a classmate's busy kernel is to a student on a shared hub: a process of its own
(not a child of this one, so the notebooks' machine note counts it as another's) that spins on one
core. Rounds alternate the conditions (quiet, hog, quiet, hog, ...), and each round measures every
candidate of the comparison in turn, as the notebook does; a condition's ratio is the ratio of its
candidates' medians over its rounds. A ratio holds when the hog moves it by at most 25 %
(``HOLDS``); the notebooks say so where one does not.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.*, run as a script
from benchmarks import record  # noqa: E402

from benchmarks.tuned import verified_onnx  # noqa: E402
from labkit.client import encode_jpeg, files_request, infer, load_image, pixels_request  # noqa: E402
from labkit.measure.machine import OtherLoad, own_cpu_seconds  # noqa: E402
from labkit.measure.scaling import ScalingLab, measure  # noqa: E402
from labkit.model import weights  # noqa: E402
from labkit.serving.server import ModelServer  # noqa: E402
from labkit.workspace import runtime_folder  # noqa: E402

REPO = record.REPO
HOLDS = 0.25  # the largest change of a ratio under the hog that still carries the same conclusion
FREE = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}
SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def hog() -> Iterator[int]:
    """A process that spins on one core, started by a shell that exits at once (so it is not this
    process's child: the machine note counts it as another's); killed at the end."""
    started = subprocess.run(["sh", "-c", f"{sys.executable} -c '{SPIN}' >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True)
    pid = int(started.stdout.strip())
    time.sleep(0.5)  # spinning before the first measurement
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)


class Comparison:
    """One comparison of a notebook: its candidates, how one is measured, the rate that is
    compared (higher is better unless it is a latency), and the ratios that carry its conclusion
    as (label, numerator, denominator)."""

    def __init__(self, notebook: str, conclusion: str, rate: str, ratios: list[tuple[str, str, str]]):
        self.notebook, self.conclusion, self.rate, self.ratios = notebook, conclusion, rate, ratios

    @contextlib.contextmanager
    def running(self, seconds: float) -> Iterator[tuple[dict, Callable[[object], dict]]]:
        raise NotImplementedError


class PayloadSizes(Comparison):
    """02: one call with the image as pixels in JSON against one with the JPEG bytes, taken in
    turn on the lab's service (notebook 02's server settings)."""

    def __init__(self) -> None:
        super().__init__("02", "the JPEG request is answered faster than the pixels", "latency_ms",
                         [("JPEG latency / pixels latency", "jpeg", "pixels")])

    @contextlib.contextmanager
    def running(self, seconds: float):
        image = load_image(REPO / "imgs" / "cat.jpg")
        payloads = {"pixels": pixels_request([image]), "jpeg": files_request([encode_jpeg(image)])}
        with ModelServer(REPO / "tinyvit", parallel_workers=0, max_batch_size=6, max_batch_time=0.05,
                         **FREE) as server:
            for request in payloads.values():
                infer(server.infer_url, request)  # warm-up

            def one(name: str) -> dict:
                # As many calls as fit in the round's seconds, their median: the notebook takes 5.
                latencies, until = [], time.monotonic() + seconds / 2
                while time.monotonic() < until or len(latencies) < 3:
                    started = time.perf_counter()
                    infer(server.infer_url, payloads[name])
                    latencies.append((time.perf_counter() - started) * 1000)
                return {"latency_ms": float(pd.Series(latencies).median())}

            yield {name: name for name in payloads}, one


class CustomAgainstRuntime(Comparison):
    """04: the custom service (21,841 probabilities) against the timm runtime's 3 labels, 4 callers
    over REST, both servers running (as in the notebook's cell)."""

    def __init__(self) -> None:
        super().__init__("04", "the timm runtime's 3 labels are served a lot faster than the custom service's "
                               "21,841 probabilities", "throughput_rps",
                         [("timm runtime / custom service", "timm runtime, 3 labels", "custom service")])

    @contextlib.contextmanager
    def running(self, seconds: float):
        with tempfile.TemporaryDirectory(prefix="bench-shared-") as scratch:
            folder = runtime_folder(Path(scratch) / "top3", lab_settings=True)
            (folder / "model-settings.json").write_text(json.dumps({
                "name": "top3", "implementation": "labkit.runtimes.timm.TimmClassifier",
                "parameters": {"uri": "tinyvit.safetensors",
                               "extra": {"model": "tiny_vit_5m_224.dist_in22k", "top_k": 3}}}))
            with ModelServer(REPO / "tinyvit", parallel_workers=0, **FREE) as custom, \
                    ModelServer(folder, **FREE) as top3:
                servers = {"custom service": custom, "timm runtime, 3 labels": top3}
                yield servers, lambda server: measure(server, concurrency=4, duration=seconds)


class Engines(Comparison):
    """04: the same model in three engines, 4 callers over gRPC (the notebook's engines table)."""

    def __init__(self) -> None:
        super().__init__("04", "ONNX Runtime and OpenVINO serve more than PyTorch", "throughput_rps",
                         [("ONNX Runtime / PyTorch", "ONNX Runtime", "PyTorch"),
                          ("OpenVINO / PyTorch", "OpenVINO", "PyTorch")])

    @contextlib.contextmanager
    def running(self, seconds: float):
        onnx = verified_onnx(weights.DEFAULT_CHECKPOINT)
        with ModelServer(REPO / "tinyvit", **FREE) as pytorch, \
                ModelServer(REPO / "runtimes" / "tinyvit-onnxruntime", weights=onnx, **FREE) as onnxruntime, \
                ModelServer(REPO / "runtimes" / "tinyvit-openvino", weights=onnx, **FREE) as openvino:
            servers = {"PyTorch": pytorch, "ONNX Runtime": onnxruntime, "OpenVINO": openvino}
            yield servers, lambda server: measure(server, concurrency=4, duration=seconds, transport="grpc")


class WorkersAndBatching(Comparison):
    """05: one or two workers, with and without adaptive batching, 8 callers (the sweep)."""

    def __init__(self) -> None:
        super().__init__("05", "two workers serve more than one; batching serves more than none", "throughput_rps",
                         [("two workers / one, without batching", "2 workers", "1 worker"),
                          ("two workers / one, with batching", "2 workers, batching", "1 worker, batching"),
                          ("batching / none, 1 worker", "1 worker, batching", "1 worker"),
                          ("batching / none, 2 workers", "2 workers, batching", "2 workers")])

    @contextlib.contextmanager
    def running(self, seconds: float):
        lab = ScalingLab(REPO / "tinyvit", duration=seconds, **FREE)
        grid = {"1 worker": (1, 1, 0.0), "1 worker, batching": (1, 8, 0.01),
                "2 workers": (2, 1, 0.0), "2 workers, batching": (2, 8, 0.01)}
        try:
            yield grid, lambda setting: lab.run(*setting, concurrency=8)
        finally:
            lab.server.stop()


class Transports(Comparison):
    """05: REST against gRPC on the student's scaled server (two workers, batches of 8 in 10 ms,
    and MLServer's default gzip, which the student's scaled/settings.json leaves on)."""

    def __init__(self) -> None:
        super().__init__("05", "gRPC serves more requests per second than REST", "throughput_rps",
                         [("gRPC / REST", "grpc", "rest")])

    @contextlib.contextmanager
    def running(self, seconds: float):
        with ModelServer(REPO / "tinyvit", parallel_workers=2, max_batch_size=8, max_batch_time=0.01,
                         server_settings={"gzip_enabled": True}, **FREE) as server:
            yield {"rest": "rest", "grpc": "grpc"}, \
                lambda transport: measure(server, concurrency=8, duration=seconds, transport=transport)


class TorchThreads(Comparison):
    """Why the PyTorch rows move: the lab's service in one process with a torch thread per core
    (its default on a machine of its own), with one thread, and with a thread per core whose
    OpenMP threads sleep instead of spinning while they wait (OMP_WAIT_POLICY=PASSIVE); 4
    callers over gRPC. Not a notebook's comparison: the reason the notebooks give for theirs."""

    def __init__(self) -> None:
        super().__init__("(why)", "a thread per core is the fastest on a quiet machine", "throughput_rps",
                         [("1 thread / a thread per core", "1 thread", "a thread per core"),
                          ("a thread per core, passive / spinning", "a thread per core, passive",
                           "a thread per core")])

    @contextlib.contextmanager
    def running(self, seconds: float):
        cores = len(os.sched_getaffinity(0))
        with ModelServer(REPO / "tinyvit", parallel_workers=0, extra={"torch_threads": cores}, **FREE) as spinning, \
                ModelServer(REPO / "tinyvit", parallel_workers=0, extra={"torch_threads": 1}, **FREE) as one, \
                ModelServer(REPO / "tinyvit", parallel_workers=0, extra={"torch_threads": cores},
                            env={"OMP_WAIT_POLICY": "PASSIVE"}, **FREE) as passive:
            servers = {"a thread per core": spinning, "1 thread": one, "a thread per core, passive": passive}
            yield servers, lambda server: measure(server, concurrency=4, duration=seconds, transport="grpc")


COMPARISONS = {"02 JPEG or pixels": PayloadSizes(), "04 custom or runtime": CustomAgainstRuntime(),
               "04 engines": Engines(), "05 workers and batching": WorkersAndBatching(),
               "05 REST or gRPC": Transports(), "why: PyTorch threads": TorchThreads()}


def compare(comparison: Comparison, rounds: int, seconds: float) -> dict:
    """Quiet and hog rounds in turn; the ratios of each condition and how far the hog moved them."""
    rows, loads = [], []
    with comparison.running(seconds) as (candidates, measure_one):
        for round_ in range(1, rounds + 1):
            for condition in ("quiet", "hog"):
                with (hog() if condition == "hog" else contextlib.nullcontext()) as spinning, OtherLoad() as load:
                    spun = own_cpu_seconds(spinning) if spinning else 0.0
                    for name, candidate in candidates.items():
                        rows.append({"condition": condition, "round": round_, "candidate": name,
                                     comparison.rate: measure_one(candidate)[comparison.rate]})
                    spun = own_cpu_seconds(spinning) - spun if spinning else 0.0
                loads.append({"condition": condition, "round": round_, "seconds": round(load.seconds, 1),
                              "others_cpu_share": round(load.share, 2), "hog_cpu_s": round(spun, 1)})
                print(f"  round {round_}, {condition}: other processes took {load.share:.0%} of the CPU",
                      flush=True)
    table = pd.DataFrame(rows)
    medians = table.groupby(["condition", "candidate"])[comparison.rate].median()
    ratios = {}
    for label, top, bottom in comparison.ratios:
        quiet = medians[("quiet", top)] / medians[("quiet", bottom)]
        busy = medians[("hog", top)] / medians[("hog", bottom)]
        change = busy / quiet - 1
        ratios[label] = {"quiet": round(float(quiet), 3), "hog": round(float(busy), 3),
                         "change": round(float(change), 3), "holds": bool(abs(change) <= HOLDS),
                         "same_side_of_1": bool((quiet > 1) == (busy > 1))}
    shares = pd.DataFrame(loads).groupby("condition")["others_cpu_share"].max()
    return {"notebook": comparison.notebook, "conclusion": comparison.conclusion, "rate": comparison.rate,
            "ratios": ratios, "others_cpu_share": {name: float(value) for name, value in shares.items()},
            "rounds": loads, "rows": table.round(3).to_dict(orient="records")}


def markdown(report: dict) -> str:
    lines = [f"# The notebooks' comparisons on a shared CPU, {report['date']} ({report['commit']}, "
             f"{report['cores']} cores)", "",
             f"Each ratio quiet and beside a process spinning on one core, {report['rounds']} rounds of each, "
             f"{report['seconds']} s per measurement; it holds when the hog moves it by at most "
             f"{HOLDS:.0%}.", "",
             "| notebook | ratio | quiet | beside the hog | change | holds | others' CPU (quiet / hog) |",
             "|---|---|---:|---:|---:|---|---|"]
    for comparison in report["comparisons"].values():
        share = comparison["others_cpu_share"]
        for label, ratio in comparison["ratios"].items():
            lines.append(f"| {comparison['notebook']} | {label} | {ratio['quiet']:.2f} | {ratio['hog']:.2f} | "
                         f"{ratio['change']:+.0%} | {'yes' if ratio['holds'] else 'no'} | "
                         f"{share.get('quiet', 0):.0%} / {share.get('hog', 0):.0%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each condition")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per measurement")
    parser.add_argument("--only", nargs="*", help="comparisons whose name starts with these (e.g. 02 '05 REST')")
    parser.add_argument("--out", type=Path, default=record.RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")  # the load's progress bars: one line per round says enough
    chosen = {name: comparison for name, comparison in COMPARISONS.items()
              if not args.only or any(name.startswith(prefix) for prefix in args.only)}
    started = time.monotonic()
    results = {}
    for name, comparison in chosen.items():
        print(f"{name}:", flush=True)
        results[name] = compare(comparison, args.rounds, args.seconds)
    report = {"date": datetime.date.today().isoformat(), "commit": record.commit(),
              "cores": len(os.sched_getaffinity(0)), "rounds": args.rounds, "seconds": args.seconds,
              "holds_within": HOLDS, "minutes": round((time.monotonic() - started) / 60, 1),
              "load_before": os.getloadavg()[0], "comparisons": results}
    stem = f"shared-cpu-{report['date']}" + ("" if not args.only else "-" + "-".join(
        prefix.replace(" ", "_") for prefix in args.only))
    record.write(args.out, stem, report, markdown, kind="shared-cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
