"""Side-by-side serving benchmark for TinyViT (``make bench``).

One run, one machine, one checkpoint, one image (the lab's cat as a JPEG):

(a) limit        decode + preprocess + forward in this process, for each backend (PyTorch
                 eager, torch.compile in full mode, ONNX Runtime and OpenVINO on the
                 verified ONNX export), at each batch size, interleaved rounds, best of 3:
                 the best backend at its best batch size is what the hardware can do;
(b) naive        PyTorch behind a FastAPI endpoint (benchmarks/naive_app.py) under
                 uvicorn, sent the same JPEG JSON body as (d) over REST;
(c) course text  MLServer as the course text configures it: the tinyvit folder's
                 defaults with MLServer's gzip_enabled (on), NumPy pixels in JSON over REST;
(d) tuned        MLServer with the lab's tuned settings (``benchmarks/tuned.py``: one process,
                 adaptive batching of up to 8 within 4 ms), JPEG bytes over gRPC;
                 (d-rest) is the same server over REST, with the lab's gzip_enabled: false
                 (tinyvit/settings.json); (d-rest-gzip) the same over REST with MLServer's
                 default, gzip on: every answer of 21,841 floats in JSON is compressed on the
                 server's CPU;
(e) engines      the tuned server with the ONNX Runtime and the OpenVINO runtime
                 (labkit.runtimes.engines) instead of PyTorch, gRPC and REST, same answer as (d);
                 and ONNX Runtime answering the top-5 labels instead of 21,841
                 probabilities (what a client needs, notebook 03), gRPC and REST;
(f) peers        servers a user might pick instead (benchmarks/peers.py, each in its own
                 environment, ``make peers``) with the same OpenVINO engine, preprocessing and
                 answer as (e), and the tuned batching: NVIDIA Triton through PyTriton, gRPC and
                 REST, and LitServe, REST. A peer that is not installed is named in the report's
                 ``peers`` with the reason, instead of a row.

Each MLServer and peer row also records the CPU milliseconds per image of each server process
and of the load generator (``benchmarks/cpu.py``): they share the machine's two cores.

The targets (``served_best``): the served best, (e) OpenVINO over gRPC, against the limit in
interleaved rounds (``measure_targets``), since this machine's speed drifts between two
measurements minutes apart. In full mode the report also holds the stage-by-stage breakdown of
the served best and the tuned PyTorch server (``benchmarks/breakdown.py``).

Each server gets a closed-loop load (labkit.measure.loadgen) at concurrency 1, 4, 8 and 16.
The report gives throughput and p50/p95 latency per row and the ratios
(d)/(a), (d)/(b), (d)/(c), (e)/(d), (e)/(a) and (e)/(f) per concurrency, as JSON and as a markdown table in
benchmarks/results/. ``--quick`` runs every row briefly, at concurrency 1 and 8 only, after one
warm-up request instead of eight (CI: a test that the script runs end to end, not a measurement).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import requests
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.peers, run as a script
from benchmarks import record  # noqa: E402

from benchmarks import breakdown, peers  # noqa: E402
from benchmarks.tuned import TUNED, verified_onnx  # noqa: E402
from benchmarks.cpu import cpu_seconds, per_image  # noqa: E402
from labkit.model import reference, weights  # noqa: E402
from labkit.runtimes.engines import ENGINES, engine_model  # noqa: E402
from labkit.client import CAT, encode_jpeg, load_image  # noqa: E402
from labkit.measure.loadgen import payload_body, run_load  # noqa: E402
from labkit.measure.challenge import in_process_rate  # noqa: E402
from labkit.serving.processes import free_port, process_tree, total_memory, wait_until  # noqa: E402
from labkit.serving.server import ModelServer  # noqa: E402

CONCURRENCY = (1, 4, 8, 16)
QUICK_CONCURRENCY = (1, 8)  # quick mode (CI): every row at one caller and at the targets' eight
BATCH_SIZES = (1, 2, 4, 8, 16)
QUICK_BATCH_SIZES = (1, 4, 8)
# Issue 27: the best served configuration (tuned OpenVINO over gRPC) at 8 callers reaches 0.8 of the
# in-process limit, and at 1 caller its p50 is within 10 ms of the engine's batch-1 p50 in process.
TARGETS = {"served_best_over_limit_c8": 0.8, "served_best_p50_c1_minus_in_process_ms": 10.0,
           "tuned_over_naive_c8": 1.3}


def backends(checkpoint, onnx_path: Path, compiled: bool) -> dict:
    """{name: classify(images) -> probabilities}: the service's own preprocessing and softmax
    around each forward (the engines are the served runtimes, loaded in this process)."""
    eager = reference.InProcessModel(checkpoint).service
    found = {"pytorch_eager": eager.classify}
    if compiled:
        compiled_service = reference.InProcessModel(checkpoint).service
        compiled_service.model = torch.compile(compiled_service.model)
        found["torch_compile"] = compiled_service.classify
    for name in ENGINES:
        found[name] = engine_model(name, onnx_path).classify
    return found


def measure_limit(classify: dict, jpeg: bytes, seconds: float, rounds: int,
                  batch_sizes: tuple = BATCH_SIZES) -> dict:
    """In-process throughput per backend of ``classify`` (``backends()``) and batch size (decode +
    preprocess + forward), the best of ``rounds`` interleaved rounds of ``seconds`` each (a limit
    is the best the machine can do, and this machine is noisy), and the batch-1 latency of each."""
    throughput = {name: {} for name in classify}
    batch1_ms = {name: [] for name in classify}
    for name, run_batch in classify.items():  # warm-up (torch.compile compiles here)
        for batch_size in batch_sizes:
            run_batch([load_image(_file(jpeg))] * batch_size)
    for _ in range(rounds):
        for name, run_batch in classify.items():
            for batch_size in batch_sizes:
                rate, done = in_process_rate(run_batch, jpeg, batch_size, seconds)
                throughput[name][batch_size] = max(throughput[name].get(batch_size, 0.0), rate)
                if batch_size == 1:
                    batch1_ms[name].extend(done)
    best_rate = {name: max(rates.values()) for name, rates in throughput.items()}
    best = max(best_rate, key=best_rate.get)
    best_batch = max(throughput[best], key=throughput[best].get)
    return {"backend": best, "best_batch": best_batch, "images_per_s": round(throughput[best][best_batch], 2),
            "batch1_p50_ms": float(np.median(batch1_ms[best])),
            "images_per_s_by_backend_and_batch": {name: {str(k): round(v, 2) for k, v in rates.items()}
                                                  for name, rates in throughput.items()},
            "batch1_p50_ms_by_backend": {name: round(float(np.median(times)), 1) for name, times in batch1_ms.items()}}


def measure_targets(server: ModelServer, limit: dict, classify: dict, engine: str, jpeg: bytes, body: bytes,
                    seconds: float, rounds: int) -> dict:
    """The served best against the limit, in interleaved rounds (this machine's speed drifts by
    tens of percent within minutes, so a ratio of two measurements minutes apart says little):
    each round measures the limit's backend at its best batch in this process, ``engine`` at
    batch 1 in this process, then ``server`` (serving ``engine``) over gRPC at 8 callers and at 1.
    Per round, served over limit at 8 callers and the served p50 at 1 caller minus the in-process
    batch-1 p50; the medians of the rounds are the targets' figures."""
    each = []
    for _ in range(rounds):
        limit_rate, _ = in_process_rate(classify[limit["backend"]], jpeg, limit["best_batch"], seconds)
        _, batch1 = in_process_rate(classify[engine], jpeg, 1, seconds)
        served = {concurrency: run_load(server.grpc_address, concurrency, seconds, body=body,
                                        grpc_model=server.name, progress=False).summary for concurrency in (8, 1)}
        if served[8]["errors"] or served[1]["errors"]:
            raise RuntimeError(f"failed requests against {server.name} while measuring the targets")
        each.append({"limit_images_per_s": round(limit_rate, 2),
                     "served_c8_images_per_s": round(served[8]["images_per_s"], 2),
                     "served_over_limit_c8": round(served[8]["images_per_s"] / limit_rate, 3),
                     "in_process_batch1_p50_ms": round(float(np.median(batch1)), 1),
                     "served_c1_p50_ms": round(served[1]["p50_ms"], 1),
                     "served_p50_c1_minus_in_process_ms": round(served[1]["p50_ms"] - float(np.median(batch1)), 1)})
    return {"server": server.name, "limit": f"{limit['backend']} at batch {limit['best_batch']}", "engine": engine,
            "seconds": seconds, "rounds": each,
            "served_over_limit_c8": round(float(np.median([r["served_over_limit_c8"] for r in each])), 3),
            "served_p50_c1_minus_in_process_ms": round(float(np.median(
                [r["served_p50_c1_minus_in_process_ms"] for r in each])), 1)}


REQUEST_TIMEOUT = 120.0  # seconds


def measure_at_levels(target: str, body: bytes, seconds: float, grpc_model: str = None, pid: int = None,
                      levels: tuple = CONCURRENCY, warmup: int = 8) -> dict:
    """Closed-loop load at each concurrency: {concurrency: summary}; with the server's ``pid``, also
    the CPU milliseconds per image of each of its processes by role (MLServer's main process and
    workers; ``other`` for any other server's) and of the load generator, this process."""
    run_load(target, min(4, warmup), duration=30, max_requests=warmup, body=body, grpc_model=grpc_model,
             progress=False)
    rows = {}
    for concurrency in levels:
        cpu_before = cpu_seconds(pid) if pid else None
        # A generous bound per request: at 16 callers on a busy machine the one-process servers
        # (naive) queue for tens of seconds; an answer that slow is slow, not failed.
        summary = run_load(target, concurrency, seconds, body=body, grpc_model=grpc_model, progress=False,
                           timeout=REQUEST_TIMEOUT).summary
        if summary["errors"]:
            raise RuntimeError(f"{summary['errors']} failed requests against {target} at concurrency {concurrency}")
        rows[str(concurrency)] = {key: round(summary[key], 2) for key in
                                  ("requests", "images_per_s", "p50_ms", "p95_ms")}
        if pid:
            cpu_after = cpu_seconds(pid)
            rows[str(concurrency)]["cpu_ms_per_image"] = per_image(cpu_before, cpu_after, summary["requests"])
    return rows


def start_naive(checkpoint) -> tuple:
    port = free_port()
    env = {**os.environ, "TINYVIT_WEIGHTS": str(checkpoint)}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.naive_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=Path(__file__).resolve().parent.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"naive app exited: {process.stderr.read().decode()[-2000:]}")
        try:
            return requests.get(f"{url}/docs", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    if wait_until(answers, 120, interval=0.3):
        return process, f"{url}/v2/models/tinyvit/infer"
    process.kill()
    raise RuntimeError("naive app did not start in 120 s")


def tree_pss_mb(pid: int) -> float:
    """PSS of a process and all its children, in MB: what the tree adds to the machine's memory."""
    return round(total_memory(process_tree(pid)) / 2**20, 1)


def kernel_pss_mb() -> float:
    """A notebook kernel's baseline: a Python that imported what the notebooks import."""
    code = ("import labkit.checks, labkit.measure.scaling, labkit.serving.server, labkit.client, psutil; "
            "print(psutil.Process().memory_full_info().pss)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(done.stdout.split()[-1]) / 2**20, 1)


def run(seconds: float, limit_seconds: float, limit_rounds: int, checkpoint, compiled: bool,
        batch_sizes: tuple = BATCH_SIZES, target_rounds: int = 5, levels: tuple = CONCURRENCY,
        warmup: int = 8) -> dict:
    measure = partial(measure_at_levels, levels=levels, warmup=warmup)
    jpeg = encode_jpeg(load_image(CAT))
    jpeg_body, numpy_body = payload_body("jpeg"), payload_body("numpy")
    onnx_path = verified_onnx(checkpoint)
    classify = backends(checkpoint, onnx_path, compiled)
    rows = {"limit": measure_limit(classify, jpeg, limit_seconds, limit_rounds, batch_sizes)}

    memory = rows["memory_pss_mb"] = {"notebook_kernel": kernel_pss_mb()}
    process, naive_url = start_naive(checkpoint)
    try:
        rows["naive"] = measure(naive_url, jpeg_body, seconds, pid=process.pid)
        memory["naive"] = tree_pss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(10)

    free = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}
    gzip_on = {"gzip_enabled": True}  # MLServer 1.7.1's default, which the lab's settings.json turns off
    with ModelServer("tinyvit", weights=checkpoint, server_settings=gzip_on, **free) as server:
        rows["course_text"] = measure(server.infer_url, numpy_body, seconds, pid=server.process.pid)
        memory["course_text"] = tree_pss_mb(server.process.pid)
    with ModelServer("tinyvit", weights=checkpoint, **free, **TUNED) as server:
        rows["tuned"] = measure(server.grpc_address, jpeg_body, seconds, grpc_model=server.name, pid=server.process.pid)
        rows["tuned_rest"] = measure(server.infer_url, jpeg_body, seconds, pid=server.process.pid)
        memory["tuned"] = tree_pss_mb(server.process.pid)
    with ModelServer("tinyvit", weights=checkpoint, server_settings=gzip_on, **free, **TUNED) as server:
        rows["tuned_rest_gzip"] = measure(server.infer_url, jpeg_body, seconds, pid=server.process.pid)
    for engine in ("openvino", "onnxruntime"):
        with ModelServer(f"runtimes/tinyvit-{engine}", weights=onnx_path, **free, **TUNED) as server:
            rows[f"tuned_{engine}"] = measure(server.grpc_address, jpeg_body, seconds, grpc_model=server.name,
                                              pid=server.process.pid)
            rows[f"tuned_{engine}_rest"] = measure(server.infer_url, jpeg_body, seconds, pid=server.process.pid)
            memory[f"tuned_{engine}"] = tree_pss_mb(server.process.pid)
            if engine == "openvino":  # the lab's best served configuration (docs/performance.md)
                rows["targets"] = measure_targets(server, rows["limit"], classify, engine, jpeg, jpeg_body,
                                                  seconds, target_rounds)
            if engine == "onnxruntime":
                # The same engine answering top-5 labels: a model setting, loaded again in place.
                server.reload(extra={"top_k": 5})
                outputs = requests.post(server.infer_url, data=jpeg_body, timeout=60,
                                        headers={"Content-Type": "application/json"}).json()["outputs"]
                assert [output["name"] for output in outputs] == ["labels", "scores"], outputs
                rows["tuned_onnxruntime_top5"] = measure(server.grpc_address, jpeg_body, seconds,
                                                         grpc_model=server.name, pid=server.process.pid)
                rows["tuned_onnxruntime_top5_rest"] = measure(server.infer_url, jpeg_body, seconds,
                                                              pid=server.process.pid)
    rows["peers"] = {}
    batching = (TUNED["max_batch_size"], TUNED["max_batch_time"])
    if reason := peers.missing("triton"):
        rows["peers"]["triton"] = reason
    else:
        with peers.triton(onnx_path, *batching) as peer:
            rows["triton_openvino"] = measure(peer.grpc_address, jpeg_body, seconds, grpc_model=peer.model,
                                              pid=peer.pid)
            rows["triton_openvino_rest"] = measure(peer.infer_url, jpeg_body, seconds, pid=peer.pid)
            memory["triton_openvino"] = tree_pss_mb(peer.pid)
        rows["peers"]["triton"] = "measured: rows triton_openvino (gRPC) and triton_openvino_rest"
    if reason := peers.missing("litserve"):
        rows["peers"]["litserve"] = reason
    else:
        with peers.litserve(onnx_path, *batching) as peer:
            rows["litserve_openvino_rest"] = measure(peer.infer_url, jpeg_body, seconds, pid=peer.pid)
            memory["litserve_openvino"] = tree_pss_mb(peer.pid)
        rows["peers"]["litserve"] = "measured: row litserve_openvino_rest (LitServe speaks no gRPC)"
    return rows


def ratios(rows: dict) -> dict:
    limit = rows["limit"]["images_per_s"]
    tuned = rows["tuned"]
    return {
        "tuned_over_limit": {c: round(tuned[c]["images_per_s"] / limit, 3) for c in tuned},
        "tuned_over_naive": {c: round(tuned[c]["images_per_s"] / rows["naive"][c]["images_per_s"], 3) for c in tuned},
        "tuned_over_course_text": {c: round(tuned[c]["images_per_s"] / rows["course_text"][c]["images_per_s"], 3)
                                   for c in tuned},
        **{f"tuned_{engine}_over_tuned": {c: round(rows[f"tuned_{engine}"][c]["images_per_s"]
                                                  / tuned[c]["images_per_s"], 3) for c in tuned}
           for engine in ("onnxruntime", "openvino")},
        "tuned_openvino_over_limit": {c: round(rows["tuned_openvino"][c]["images_per_s"] / limit, 3) for c in tuned},
        # The same engine served by MLServer and by a peer, same transport (above 1: MLServer ahead).
        **{f"tuned_openvino{transport}_over_{peer}_openvino{transport}": {
            c: round(rows[f"tuned_openvino{transport}"][c]["images_per_s"]
                     / rows[f"{peer}_openvino{transport}"][c]["images_per_s"], 3) for c in tuned}
           for peer, transport in (("triton", ""), ("triton", "_rest"), ("litserve", "_rest"))
           if f"{peer}_openvino{transport}" in rows},
    }


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))
    import mlserver

    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_gib": round(memory_kb / 2**20, 1),
            "python": platform.python_version(), "torch": torch.__version__, "mlserver": mlserver.__version__,
            "os": platform.platform()}


def targets(best: dict, ratio: dict) -> dict:
    """Issue 27's targets: the served best (``measure_targets``, interleaved rounds) against the
    limit, and the tuned PyTorch server against the naive wrapper."""
    return {
        "served_best_over_limit_c8": {"target": TARGETS["served_best_over_limit_c8"],
                                      "measured": best["served_over_limit_c8"], "at_least": True},
        "served_best_p50_c1_minus_in_process_ms": {"target": TARGETS["served_best_p50_c1_minus_in_process_ms"],
                                                   "measured": best["served_p50_c1_minus_in_process_ms"],
                                                   "at_least": False},
        "tuned_over_naive_c8": {"target": TARGETS["tuned_over_naive_c8"], "measured": ratio["tuned_over_naive"]["8"],
                                "at_least": True},
    }


def markdown(report: dict) -> str:
    rows, lines = report["rows"], []
    limit = rows["limit"]
    lines += [f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
              f"{report['machine']['memory_gib']} GiB; torch {report['machine']['torch']}, "
              f"MLServer {report['machine']['mlserver']}; {report['date']} ({report['mode']} mode).", "",
              f"(a) limit, in-process: {limit['images_per_s']:.1f} images/s with {limit['backend']} at batch "
              f"{limit['best_batch']}; its batch-1 p50 {limit['batch1_p50_ms']:.1f} ms.", "",
              "| in-process backend | " + " | ".join(f"batch {b}" for b in BATCH_SIZES) + " | batch-1 p50 ms |",
              "|---|" + "---:|" * (len(BATCH_SIZES) + 1)]
    for name, rates in limit["images_per_s_by_backend_and_batch"].items():
        cells = [f"{rates[str(b)]:.1f}" if str(b) in rates else "-" for b in BATCH_SIZES]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {limit['batch1_p50_ms_by_backend'][name]:.0f} |")
    lines += ["",
              "| row | C | images/s | p50 ms | p95 ms | CPU ms per image (server processes; load generator) |",
              "|---|---:|---:|---:|---:|---|"]
    names = {"naive": "(b) naive FastAPI", "course_text": "(c) MLServer, course text",
             "tuned": "(d) MLServer tuned, gRPC", "tuned_rest": "(d-rest) MLServer tuned, REST, gzip off",
             "tuned_rest_gzip": "(d-rest-gzip) MLServer tuned, REST, gzip on (default)",
             "tuned_onnxruntime": "(e) tuned, ONNX Runtime, gRPC",
             "tuned_onnxruntime_rest": "(e) tuned, ONNX Runtime, REST",
             "tuned_openvino": "(e) tuned, OpenVINO, gRPC", "tuned_openvino_rest": "(e) tuned, OpenVINO, REST",
             "tuned_onnxruntime_top5": "(e-top5) tuned, ONNX Runtime, top-5 labels, gRPC",
             "tuned_onnxruntime_top5_rest": "(e-top5) tuned, ONNX Runtime, top-5 labels, REST",
             "triton_openvino": "(f) Triton (PyTriton), OpenVINO, gRPC",
             "triton_openvino_rest": "(f) Triton (PyTriton), OpenVINO, REST",
             "litserve_openvino_rest": "(f) LitServe, OpenVINO, REST"}
    for key, name in names.items():
        if key not in rows:
            continue
        for c, row in rows[key].items():
            cpu = row.get("cpu_ms_per_image", {})
            # "other": a process that is not MLServer's (the naive app, a peer's processes).
            server_cpu = ", ".join(f"{'server' if role == 'other' else role} {cpu[role]:.0f}"
                                   for role in ("main", "worker", "other") if cpu.get(role, 0) >= 1)
            cpu_cell = f"{server_cpu}; {cpu['load generator']:.1f}" if cpu else ""
            lines.append(f"| {name} | {c} | {row['images_per_s']:.1f} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} "
                         f"| {cpu_cell} |")
    memory = report["memory_pss_mb"]
    lines += ["", "| memory after the load (PSS, MB) | " + " | ".join(memory) + " |", "|---|" + "---:|" * len(memory),
              "| | " + " | ".join(f"{value:.0f}" for value in memory.values()) + " |"]
    levels = list(rows["tuned"])  # the concurrency levels measured (fewer in quick mode)
    lines += ["", "| ratio | " + " | ".join(f"C={c}" for c in levels) + " |",
              "|---|" + "---:|" * len(levels)]
    for name, values in report["ratios"].items():
        lines.append(f"| {name} | " + " | ".join(f"{values[c]:.2f}" for c in levels) + " |")
    lines += ["", "Peers: " + "; ".join(f"{name}: {note}" for name, note in report["peers"].items())]
    best = report["served_best"]
    lines += ["", f"Served best ({best['server']}, gRPC) against the limit ({best['limit']}) and {best['engine']} at "
              f"batch 1 in process, in {len(best['rounds'])} interleaved round(s) of {best['seconds']} s per "
              "measurement:", "",
              "| round | limit images/s | served C=8 images/s | ratio | in-process batch-1 p50 ms | "
              "served C=1 p50 ms | gap ms |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for number, row in enumerate(best["rounds"], 1):
        lines.append(f"| {number} | {row['limit_images_per_s']:.1f} | {row['served_c8_images_per_s']:.1f} | "
                     f"{row['served_over_limit_c8']:.2f} | {row['in_process_batch1_p50_ms']:.1f} | "
                     f"{row['served_c1_p50_ms']:.1f} | {row['served_p50_c1_minus_in_process_ms']:.1f} |")
    lines += ["", "| target | goal | measured (median of the rounds) | met |", "|---|---:|---:|---|"]
    for name, values in report["targets"].items():
        met = values["measured"] >= values["target"] if values["at_least"] else values["measured"] <= values["target"]
        goal = f"{'>=' if values['at_least'] else '<='} {values['target']}"
        lines.append(f"| {name} | {goal} | {values['measured']} | {'yes' if met else 'no'} |")
    if "breakdown" in report:
        lines += ["", breakdown.markdown({"date": report["date"], "seconds_per_row": report["seconds_per_level"],
                                          "settings": report["tuned_settings"], "weights": report["weights"],
                                          "rows": report["breakdown"]}).replace("# Where", "## Where", 1)]
    return "\n".join(lines) + "\n"


def _file(data: bytes):
    import io

    return io.BytesIO(data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every row, briefly (CI)")
    parser.add_argument("--seconds", type=float, help="load per concurrency level (default 10, quick 1.5)")
    parser.add_argument("--out", type=Path, default=record.RESULTS)
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (quick mode does)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: write the markdown of a record again (after a change to its layout)")
    args = parser.parse_args(argv)
    if args.render:
        args.render.with_suffix(".md").write_text(markdown(json.loads(args.render.read_text())))
        return 0
    seconds = args.seconds or (1.5 if args.quick else 10.0)
    checkpoint = weights.DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        checkpoint = weights.write_random_checkpoint(Path(tempfile.mkdtemp()) / "tinyvit.safetensors")
    rows = run(seconds, limit_seconds=0.5 if args.quick else 3.0, limit_rounds=1 if args.quick else 3,
               checkpoint=checkpoint, compiled=not (args.quick or args.no_compile),
               batch_sizes=QUICK_BATCH_SIZES if args.quick else BATCH_SIZES, target_rounds=1 if args.quick else 5,
               levels=QUICK_CONCURRENCY if args.quick else CONCURRENCY, warmup=1 if args.quick else 8)
    memory = rows.pop("memory_pss_mb")
    peer_notes = rows.pop("peers")
    served_best = rows.pop("targets")
    ratio = ratios(rows)
    today = datetime.date.today().isoformat()
    report = {"date": today, "mode": "quick" if args.quick else "full", "seconds_per_level": seconds,
              "machine": machine(), "weights": "random" if weights.is_random(checkpoint) else "pretrained",
              "tuned_settings": {**TUNED, "transport": "grpc", "payload": "jpeg"},
              "rows": rows, "peers": peer_notes, "ratios": ratio, "served_best": served_best,
              "targets": targets(served_best, ratio), "memory_pss_mb": memory}
    if not args.quick:
        # Where the served best's milliseconds and CPU go, with the model in a worker instead, and
        # the tuned PyTorch server's (the breakdown's own test covers it briefly; here, in full
        # mode only, it adds three servers).
        report["breakdown"] = breakdown.run(seconds, (1, 8), checkpoint,
                                            ["OpenVINO, tuned", "OpenVINO, tuned, 1 worker", "PyTorch, tuned"])
    record.write(args.out, today, report, markdown, kind="serving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
