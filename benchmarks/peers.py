"""Servers a user might pick instead of MLServer, for the serving benchmark's peer rows.

Each peer runs in an environment of its own, built on demand (``make peers``), because its
pins clash with the lab's. :func:`triton` starts NVIDIA Triton (PyTriton) on free loopback
ports with ``benchmarks/triton_peer.py``, :func:`litserve` starts LitServe with
``benchmarks/litserve_peer.py``; each stops its whole process group afterwards. :func:`missing`
says why a peer cannot run here (the benchmark records it instead of a row).

Why these: Triton is the server the Open Inference Protocol comes from (MLServer implements
Triton's V2 protocol), so the lab's own clients talk to it unchanged. LitServe is the Python
server with batching (why it and not BentoML or Ray Serve: ``benchmarks/litserve_peer.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests

from labkit.serving.processes import free_port

REPO = Path(__file__).resolve().parent.parent
PYTHONS = {"triton": REPO / ".venv-triton" / "bin" / "python", "litserve": REPO / ".venv-litserve" / "bin" / "python"}
WHAT = {"triton": "nvidia-pytriton, its own numpy<2", "litserve": "litserve with OpenVINO, no torch"}
TRITON_SCRIPT = Path(__file__).with_name("triton_peer.py")
LITSERVE_SCRIPT = Path(__file__).with_name("litserve_peer.py")


@dataclass
class Peer:
    name: str
    infer_url: str  # REST, for the load generator and the lab's clients
    grpc_address: str | None  # None: the peer speaks no gRPC
    pid: int  # of the peer's process; its server runs below it
    model: str = "tinyvit"


def missing(name: str) -> str | None:
    """Why the peer ``name`` cannot run here, or None."""
    python = PYTHONS[name]
    if not (python.parent.parent / ".installed").exists():
        return f"{python.parent.parent.name} is not built: run `make peers` ({WHAT[name]})"
    return None


@contextlib.contextmanager
def triton(onnx: Path, max_batch_size: int = 8, max_batch_time: float = 0.004, threads: int = 0,
           timeout: float = 120) -> Iterator[Peer]:
    """Triton serving TinyViT's verified ONNX export in OpenVINO, like the lab's OpenVINO runtime."""
    reason = missing("triton")
    if reason:
        raise RuntimeError(reason)
    http, grpc, metrics = free_port(), free_port(), free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(PYTHONS["triton"]), str(TRITON_SCRIPT), "--onnx", str(onnx), "--http-port", str(http),
             "--grpc-port", str(grpc), "--metrics-port", str(metrics), "--max-batch-size", str(max_batch_size),
             "--max-batch-time", str(max_batch_time), "--threads", str(threads)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_until_ready(process, f"http://127.0.0.1:{http}/v2/models/tinyvit/ready", timeout, log, "Triton")
            yield Peer("triton", f"http://127.0.0.1:{http}/v2/models/tinyvit/infer", f"127.0.0.1:{grpc}",
                       process.pid)
        finally:
            _stop_group(process)


@contextlib.contextmanager
def litserve(onnx: Path, max_batch_size: int = 8, max_batch_time: float = 0.004, threads: int = 0,
             timeout: float = 120) -> Iterator[Peer]:
    """LitServe serving TinyViT's verified ONNX export in OpenVINO, REST only, like the lab's
    OpenVINO runtime; adaptive batching with the same settings."""
    reason = missing("litserve")
    if reason:
        raise RuntimeError(reason)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="litserve-peer-") as folder, tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(PYTHONS["litserve"]), str(LITSERVE_SCRIPT), "--onnx", str(onnx), "--port", str(port),
             "--max-batch-size", str(max_batch_size), "--max-batch-time", str(max_batch_time),
             "--threads", str(threads)],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_until_ready(process, f"http://127.0.0.1:{port}/health", timeout, log, "LitServe")
            yield Peer("litserve", f"http://127.0.0.1:{port}/v2/models/tinyvit/infer", None, process.pid)
        finally:
            _stop_group(process)


def _wait_until_ready(process: subprocess.Popen, ready_url: str, timeout: float, log, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{name} exited with code {process.returncode}:\n"
                               f"{log.read().decode(errors='replace')[-3000:]}")
        try:
            if requests.get(ready_url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{name} not ready after {timeout:.0f} s")


def _stop_group(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the peer (Triton's script stops Triton and its stub itself), then SIGKILL to its
    group (whatever is left: tritonserver, the stub, LitServe's inference worker)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left (tritonserver, stub)
    process.wait(5)
