"""Soak test of the TinyViT service (``make soak``; ``tests/test_soak.py`` runs it briefly).

16 clients keep requests in flight for a bounded time against MLServer with 2 workers
and adaptive batching. Requests are JPEGs of mixed sizes, 1 to 3 images each, drawn
from a fixed pool whose answers the in-process model computed beforehand, so **every**
response is checked (status, shape, values, top class) without slowing the load.

Reported: requests, failed and wrong responses, throughput, the server's resident
memory (main process + workers) after warm-up, every few seconds, and at the end, and
after stop whether any process of the server or one of its ports is left.
Writes benchmarks/results/soak-<date>.json.
"""

import argparse
import datetime
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import requests

from labkit.model import reference, weights
from labkit.client import CAT, decode_outputs, encode_jpeg, files_request, load_image, request_body
from labkit.serving.processes import group_alive, port_is_free, process_tree, total_memory
from labkit.serving.server import ModelServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks, run as a script
from benchmarks import record  # noqa: E402

SETTINGS = {"parallel_workers": 2, "max_batch_size": 4, "max_batch_time": 0.01}
MAX_IMAGES_PER_REQUEST = 3
CONCURRENCY = 16


def request_pool(model: reference.InProcessModel, count: int = 8) -> list:
    """``count`` (body, expected probabilities) pairs: shifted crops of the cat of
    different sizes, 1 to 3 images per request, as JPEG bytes."""
    cat = load_image(CAT)
    pool = []
    for index in range(count):
        images = [np.ascontiguousarray(np.roll(cat, 11 * index + 5 * k, axis=1)[: 180 + 13 * index, : 220 + 7 * k])
                  for k in range(1 + index % MAX_IMAGES_PER_REQUEST)]
        files = [encode_jpeg(image) for image in images]
        expected = model.probabilities([load_image(_file(data)) for data in files])
        pool.append((request_body(files_request(files)), expected))
    return pool


def _file(data: bytes):
    import io

    return io.BytesIO(data)


def warm_every_batch_size(server: ModelServer) -> None:
    """Send each merged batch size the soak can produce (1 to max_batch_size x 3 images)
    to every worker once, one request at a time: each new size makes a worker allocate
    for it, growth that is warm-up, not a leak."""
    image = encode_jpeg(load_image(CAT))
    largest = SETTINGS["max_batch_size"] * MAX_IMAGES_PER_REQUEST
    with requests.Session() as session:
        for size in range(1, largest + 1):
            body = request_body(files_request([image] * size))
            for _ in range(SETTINGS["parallel_workers"]):
                session.post(server.infer_url, data=body, timeout=120,
                             headers={"Content-Type": "application/json"}).raise_for_status()


def verdict(answer: requests.Response, expected: np.ndarray) -> str:
    """'ok', 'failed' (no answer or not 200) or 'wrong' (200 with other numbers)."""
    if answer is None or answer.status_code != 200:
        return "failed"
    try:
        probabilities = decode_outputs(answer.json())["probabilities"]
    except (ValueError, KeyError):
        return "wrong"
    if probabilities.shape != expected.shape or not np.allclose(probabilities, expected, rtol=1e-3, atol=1e-6) \
            or (probabilities.argmax(axis=1) != expected.argmax(axis=1)).any():
        return "wrong"
    return "ok"


def server_rss_mb(server: ModelServer) -> float:
    """Resident memory of the server's main process and all its children, in MB."""
    return total_memory(process_tree(server.process.pid), kind="rss") / 2**20


def drive(url: str, pool: list, seconds: float, concurrency: int, on_tick=None) -> Counter:
    """Closed-loop load for ``seconds``: each client cycles through the pool from its own offset."""
    outcomes, lock = Counter(), threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int):
        session = requests.Session()
        index = offset
        while time.monotonic() < deadline:
            body, expected = pool[index % len(pool)]
            try:
                answer = session.post(url, data=body, timeout=60, headers={"Content-Type": "application/json"})
            except requests.RequestException:
                answer = None
            result = verdict(answer, expected)
            with lock:
                outcomes[result] += 1
            index += 1
        session.close()

    threads = [threading.Thread(target=client, args=(offset,), daemon=True) for offset in range(concurrency)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        time.sleep(1)
        if on_tick:
            on_tick()
    return outcomes


def soak(checkpoint, seconds: float, concurrency: int = CONCURRENCY, warmup_seconds: float = 5) -> dict:
    """Run the soak and return its report (see the module docstring)."""
    pool = request_pool(reference.InProcessModel(checkpoint))
    server = ModelServer("tinyvit", weights=checkpoint, http_port=0, grpc_port=0, metrics_port=0, **SETTINGS)
    server.start(progress=False)
    try:
        warm_every_batch_size(server)
        warmup = drive(server.infer_url, pool, warmup_seconds, concurrency)
        rss_samples = [server_rss_mb(server)]
        last_sample = [time.monotonic()]

        def sample():
            if time.monotonic() - last_sample[0] >= 5:
                rss_samples.append(server_rss_mb(server))
                last_sample[0] = time.monotonic()

        started = time.monotonic()
        outcomes = drive(server.infer_url, pool, seconds, concurrency, on_tick=sample)
        elapsed = time.monotonic() - started
        rss_samples.append(server_rss_mb(server))
        workers = len(psutil.Process(server.process.pid).children(recursive=True))
    finally:
        server.stop()
    pid, ports = server.process.pid, dict(server.ports)
    time.sleep(0.5)  # let the kernel release the sockets of the killed group
    requests_sent = sum(outcomes.values())
    return {
        "date": datetime.date.today().isoformat(),
        "settings": {**SETTINGS, "concurrency": concurrency, "payload": "jpeg, 1-3 images of mixed sizes"},
        "seconds": round(elapsed, 1),
        "warmup_requests": sum(warmup.values()),
        "requests": requests_sent,
        "failed": outcomes["failed"] + warmup["failed"],
        "wrong": outcomes["wrong"] + warmup["wrong"],
        "throughput_rps": round(requests_sent / elapsed, 2),
        "server_processes": 1 + workers,
        "rss_mb": {"start": round(rss_samples[0], 1), "end": round(rss_samples[-1], 1),
                   "max": round(max(rss_samples), 1), "samples": [round(value, 1) for value in rss_samples]},
        "left_behind": {"processes": group_alive(pid),
                        "ports": sorted(port for port in ports.values() if not port_is_free(port))},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300, help="length of the soak (default 300)")
    parser.add_argument("--out", type=Path, default=record.RESULTS)
    args = parser.parse_args(argv)
    checkpoint = weights.DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        checkpoint = weights.write_random_checkpoint(Path(tempfile.mkdtemp()) / "tinyvit.safetensors")
    report = soak(checkpoint, args.seconds)
    record.write(args.out, f"soak-{report['date']}", report)
    healthy = not report["failed"] and not report["wrong"] and not any(report["left_behind"].values())
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
