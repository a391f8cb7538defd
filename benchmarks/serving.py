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
(d) tuned        MLServer with adaptive batching, torch threads sized to the cores,
                 JPEG bytes over gRPC; (d-rest) is the same server over REST, with the
                 lab's gzip_enabled: false (tinyvit/settings.json); (d-rest-gzip) the same
                 over REST with MLServer's default, gzip on: every answer of 21,841
                 floats in JSON is compressed on the server's CPU;
(e) engines      the tuned server with the ONNX Runtime and the OpenVINO runtime
                 (labkit.runtimes.engines) instead of PyTorch, gRPC and REST, same answer as (d);
                 and ONNX Runtime answering the top-5 labels instead of 21,841
                 probabilities (what a client needs, notebook 03), gRPC and REST;
(f) peers        servers a user might pick instead (benchmarks/peers.py, each in its own
                 environment, ``make peers``): NVIDIA Triton through PyTriton with the same
                 OpenVINO engine, preprocessing and answer as (e), and the tuned batching, gRPC
                 and REST. A peer that is not installed is named in the report's ``peers`` with
                 the reason, instead of a row.

Each server gets a closed-loop load (labkit.measure.loadgen) at concurrency 1, 4, 8 and 16.
The report gives throughput and p50/p95 latency per row and the ratios
(d)/(a), (d)/(b), (d)/(c) and (e)/(d) per concurrency, as JSON and as a markdown table in
benchmarks/results/. ``--quick`` runs every row briefly (CI).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.peers, run as a script

from benchmarks import peers  # noqa: E402
from labkit.model import export, reference, weights  # noqa: E402
from labkit.runtimes.engines import ENGINES, engine_model  # noqa: E402
from labkit.client import CAT, encode_jpeg, load_image  # noqa: E402
from labkit.measure.loadgen import payload_body, run_load  # noqa: E402
from labkit.serving.processes import free_port, process_tree, total_memory, wait_until  # noqa: E402
from labkit.serving.server import ModelServer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = (1, 4, 8, 16)
BATCH_SIZES = (1, 2, 4, 8, 16)
QUICK_BATCH_SIZES = (1, 4, 8)
TUNED = {"parallel_workers": 1, "max_batch_size": 4, "max_batch_time": 0.005}
TARGETS = {"tuned_over_limit_c8": 0.90, "tuned_over_naive_c8": 1.3, "tuned_p50_c1_minus_limit_ms": 10.0}


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


def measure_limit(checkpoint, onnx_path: Path, jpeg: bytes, seconds: float, rounds: int, compiled: bool,
                  batch_sizes: tuple = BATCH_SIZES) -> dict:
    """In-process throughput per backend and batch size (decode + preprocess + forward),
    the best of ``rounds`` interleaved rounds of ``seconds`` each (a limit is the best the
    machine can do, and this machine is noisy), and the batch-1 latency of the best backend."""
    classify = backends(checkpoint, onnx_path, compiled)
    throughput = {name: {} for name in classify}
    batch1_ms = {name: [] for name in classify}
    for name, run_batch in classify.items():  # warm-up (torch.compile compiles here)
        for batch_size in batch_sizes:
            run_batch([load_image(_file(jpeg))] * batch_size)
    for _ in range(rounds):
        for name, run_batch in classify.items():
            for batch_size in batch_sizes:
                images, done = 0, []
                started = time.perf_counter()
                while time.perf_counter() - started < seconds or not done:
                    begin = time.perf_counter()
                    run_batch([load_image(_file(jpeg)) for _ in range(batch_size)])
                    done.append((time.perf_counter() - begin) * 1000)
                    images += batch_size
                rate = images / (time.perf_counter() - started)
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


def verified_onnx(checkpoint) -> Path:
    """weights/tinyvit.onnx when it is a verified export of ``checkpoint``; otherwise a fresh
    export (verified) in a temp folder."""
    try:
        record = export.verified_record(export.DEFAULT_ONNX)
        if record["checkpoint_sha256"] == export.sha256(checkpoint):
            return export.DEFAULT_ONNX
    except export.NotVerified:
        pass
    path = Path(tempfile.mkdtemp()) / "tinyvit.onnx"
    export.export(checkpoint, path)
    return path


def measure(target: str, body: bytes, seconds: float, grpc_model: str = None) -> dict:
    """Closed-loop load at each concurrency: {concurrency: summary}."""
    run_load(target, 4, duration=30, max_requests=8, body=body, grpc_model=grpc_model, progress=False)
    rows = {}
    for concurrency in CONCURRENCY:
        summary = run_load(target, concurrency, seconds, body=body, grpc_model=grpc_model, progress=False).summary
        if summary["errors"]:
            raise RuntimeError(f"{summary['errors']} failed requests against {target} at concurrency {concurrency}")
        rows[str(concurrency)] = {key: round(summary[key], 2) for key in
                                  ("requests", "images_per_s", "p50_ms", "p95_ms")}
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
    code = ("import labkit.checks, labkit.measure.panel, labkit.serving.server, labkit.client, psutil; "
            "print(psutil.Process().memory_full_info().pss)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(done.stdout.split()[-1]) / 2**20, 1)


def run(seconds: float, limit_seconds: float, limit_rounds: int, checkpoint, compiled: bool,
        batch_sizes: tuple = BATCH_SIZES) -> dict:
    jpeg = encode_jpeg(load_image(CAT))
    jpeg_body, numpy_body = payload_body("jpeg"), payload_body("numpy")
    onnx_path = verified_onnx(checkpoint)
    rows = {"limit": measure_limit(checkpoint, onnx_path, jpeg, limit_seconds, limit_rounds, compiled, batch_sizes)}

    memory = rows["memory_pss_mb"] = {"notebook_kernel": kernel_pss_mb()}
    process, naive_url = start_naive(checkpoint)
    try:
        rows["naive"] = measure(naive_url, jpeg_body, seconds)
        memory["naive"] = tree_pss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(10)

    free = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}
    gzip_on = {"gzip_enabled": True}  # MLServer 1.7.1's default, which the lab's settings.json turns off
    with ModelServer("tinyvit", weights=checkpoint, server_settings=gzip_on, **free) as server:
        rows["course_text"] = measure(server.infer_url, numpy_body, seconds)
        memory["course_text"] = tree_pss_mb(server.process.pid)
    with ModelServer("tinyvit", weights=checkpoint, **free, **TUNED) as server:
        rows["tuned"] = measure(server.grpc_address, jpeg_body, seconds, grpc_model=server.name)
        rows["tuned_rest"] = measure(server.infer_url, jpeg_body, seconds)
        memory["tuned"] = tree_pss_mb(server.process.pid)
    with ModelServer("tinyvit", weights=checkpoint, server_settings=gzip_on, **free, **TUNED) as server:
        rows["tuned_rest_gzip"] = measure(server.infer_url, jpeg_body, seconds)
    for engine in ("openvino", "onnxruntime"):
        with ModelServer(f"runtimes/tinyvit-{engine}", weights=onnx_path, **free, **TUNED) as server:
            rows[f"tuned_{engine}"] = measure(server.grpc_address, jpeg_body, seconds, grpc_model=server.name)
            rows[f"tuned_{engine}_rest"] = measure(server.infer_url, jpeg_body, seconds)
            memory[f"tuned_{engine}"] = tree_pss_mb(server.process.pid)
            if engine == "onnxruntime":
                # The same engine answering top-5 labels: a model setting, loaded again in place.
                server.reload(extra={"top_k": 5})
                outputs = requests.post(server.infer_url, data=jpeg_body, timeout=60,
                                        headers={"Content-Type": "application/json"}).json()["outputs"]
                assert [output["name"] for output in outputs] == ["labels", "scores"], outputs
                rows["tuned_onnxruntime_top5"] = measure(server.grpc_address, jpeg_body, seconds,
                                                         grpc_model=server.name)
                rows["tuned_onnxruntime_top5_rest"] = measure(server.infer_url, jpeg_body, seconds)
    rows["peers"] = {}
    reason = peers.missing("triton")
    if reason:
        rows["peers"]["triton"] = reason
    else:
        with peers.triton(onnx_path, TUNED["max_batch_size"], TUNED["max_batch_time"]) as peer:
            rows["triton_openvino"] = measure(peer.grpc_address, jpeg_body, seconds, grpc_model=peer.model)
            rows["triton_openvino_rest"] = measure(peer.infer_url, jpeg_body, seconds)
            memory["triton_openvino"] = tree_pss_mb(peer.pid)
        rows["peers"]["triton"] = "measured: rows triton_openvino (gRPC) and triton_openvino_rest"
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
        # The same engine served by MLServer and by Triton (above 1: MLServer ahead).
        **({"tuned_openvino_over_triton_openvino": {
            c: round(rows["tuned_openvino"][c]["images_per_s"] / rows["triton_openvino"][c]["images_per_s"], 3)
            for c in tuned}} if "triton_openvino" in rows else {}),
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


def targets(rows: dict, ratio: dict) -> dict:
    gap = rows["tuned"]["1"]["p50_ms"] - rows["limit"]["batch1_p50_ms"]
    return {
        "tuned_over_limit_c8": {"target": TARGETS["tuned_over_limit_c8"], "measured": ratio["tuned_over_limit"]["8"]},
        "tuned_over_naive_c8": {"target": TARGETS["tuned_over_naive_c8"], "measured": ratio["tuned_over_naive"]["8"]},
        "tuned_p50_c1_minus_limit_ms": {"target": TARGETS["tuned_p50_c1_minus_limit_ms"], "measured": round(gap, 1)},
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
              "| row | C | images/s | p50 ms | p95 ms |", "|---|---:|---:|---:|---:|"]
    names = {"naive": "(b) naive FastAPI", "course_text": "(c) MLServer, course text",
             "tuned": "(d) MLServer tuned, gRPC", "tuned_rest": "(d-rest) MLServer tuned, REST, gzip off",
             "tuned_rest_gzip": "(d-rest-gzip) MLServer tuned, REST, gzip on (default)",
             "tuned_onnxruntime": "(e) tuned, ONNX Runtime, gRPC",
             "tuned_onnxruntime_rest": "(e) tuned, ONNX Runtime, REST",
             "tuned_openvino": "(e) tuned, OpenVINO, gRPC", "tuned_openvino_rest": "(e) tuned, OpenVINO, REST",
             "tuned_onnxruntime_top5": "(e-top5) tuned, ONNX Runtime, top-5 labels, gRPC",
             "tuned_onnxruntime_top5_rest": "(e-top5) tuned, ONNX Runtime, top-5 labels, REST",
             "triton_openvino": "(f) Triton (PyTriton), OpenVINO, gRPC",
             "triton_openvino_rest": "(f) Triton (PyTriton), OpenVINO, REST"}
    for key, name in names.items():
        if key not in rows:
            continue
        for c, row in rows[key].items():
            lines.append(f"| {name} | {c} | {row['images_per_s']:.1f} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} |")
    memory = report["memory_pss_mb"]
    lines += ["", "| memory after the load (PSS, MB) | " + " | ".join(memory) + " |", "|---|" + "---:|" * len(memory),
              "| | " + " | ".join(f"{value:.0f}" for value in memory.values()) + " |"]
    lines += ["", "| ratio | " + " | ".join(f"C={c}" for c in map(str, CONCURRENCY)) + " |",
              "|---|" + "---:|" * len(CONCURRENCY)]
    for name, values in report["ratios"].items():
        lines.append(f"| {name} | " + " | ".join(f"{values[str(c)]:.2f}" for c in CONCURRENCY) + " |")
    lines += ["", "Peers: " + "; ".join(f"{name}: {note}" for name, note in report["peers"].items())]
    lines += ["", "| target | goal | measured |", "|---|---:|---:|"]
    for name, values in report["targets"].items():
        lines.append(f"| {name} | {values['target']} | {values['measured']} |")
    return "\n".join(lines) + "\n"


def _file(data: bytes):
    import io

    return io.BytesIO(data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every row, briefly (CI)")
    parser.add_argument("--seconds", type=float, help="load per concurrency level (default 10, quick 1.5)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (quick mode does)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (1.5 if args.quick else 10.0)
    checkpoint = weights.DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        checkpoint = weights.write_random_checkpoint(Path(tempfile.mkdtemp()) / "tinyvit.safetensors")
    rows = run(seconds, limit_seconds=0.5 if args.quick else 3.0, limit_rounds=1 if args.quick else 3,
               checkpoint=checkpoint, compiled=not (args.quick or args.no_compile),
               batch_sizes=QUICK_BATCH_SIZES if args.quick else BATCH_SIZES)
    memory = rows.pop("memory_pss_mb")
    peer_notes = rows.pop("peers")
    ratio = ratios(rows)
    today = datetime.date.today().isoformat()
    report = {"date": today, "mode": "quick" if args.quick else "full", "seconds_per_level": seconds,
              "machine": machine(), "weights": "random" if weights.is_random(checkpoint) else "pretrained",
              "tuned_settings": {**TUNED, "transport": "grpc", "payload": "jpeg"},
              "rows": rows, "peers": peer_notes, "ratios": ratio, "targets": targets(rows, ratio),
              "memory_pss_mb": memory}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{today}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{today}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
