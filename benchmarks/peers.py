"""Servers a user might pick instead of MLServer, for the serving benchmark's peer rows.

Each peer runs in an environment of its own, built on demand (``make peers``), because its
pins clash with the lab's. :func:`triton` starts NVIDIA Triton (PyTriton) with the lab's
:mod:`labkit.serving.triton` (notebook 05 starts it too), :func:`litserve` starts LitServe with
``benchmarks/litserve_peer.py``; each stops its whole process group afterwards. :func:`missing`
says why a peer cannot run here (the benchmark records it instead of a row).

Why these: Triton is the server the Open Inference Protocol comes from (MLServer implements
Triton's V2 protocol), so the lab's own clients talk to it unchanged. LitServe is the Python
server with batching (why it and not BentoML or Ray Serve: ``benchmarks/litserve_peer.py``).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from labkit.serving import triton as lab_triton
from labkit.serving.processes import free_port, stop_group, wait_until_serving

REPO = Path(__file__).resolve().parent.parent
LITSERVE_PYTHON = REPO / ".venv-litserve" / "bin" / "python"
LITSERVE_SCRIPT = Path(__file__).with_name("litserve_peer.py")


@dataclass
class Peer:
    name: str
    infer_url: str  # REST, for the load generator and the lab's clients
    grpc_address: str | None  # None: the peer speaks no gRPC
    pid: int  # of the peer's process; its server runs below it
    model: str = "tinyvit"


def missing(name: str) -> str | None:
    """Why the peer ``name`` (``"triton"`` or ``"litserve"``) cannot run here, or None."""
    if name == "triton":
        return lab_triton.missing()  # the lab's own check: notebook 05 starts Triton too
    if name != "litserve":
        raise KeyError(f"no peer named {name!r}")
    if not (LITSERVE_PYTHON.parent.parent / ".installed").exists():
        return ".venv-litserve is not built: run `make peers` (litserve with OpenVINO, no torch)"
    return None


@contextlib.contextmanager
def triton(onnx: Path, max_batch_size: int = 8, max_batch_time: float = 0.004, threads: int = 0,
           timeout: float = 120) -> Iterator[Peer]:
    """Triton serving TinyViT's verified ONNX export in OpenVINO, like the lab's OpenVINO runtime;
    its model for JPEG files, the body the load generator sends."""
    with lab_triton.serve(onnx, max_batch_size, max_batch_time, threads, timeout) as server:
        yield Peer("triton", server.infer_url("tinyvit-jpeg"), server.grpc_address, server.pid, model="tinyvit-jpeg")


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
            [str(LITSERVE_PYTHON), str(LITSERVE_SCRIPT), "--onnx", str(onnx), "--port", str(port),
             "--max-batch-size", str(max_batch_size), "--max-batch-time", str(max_batch_time),
             "--threads", str(threads)],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until_serving(process, f"http://127.0.0.1:{port}/health", timeout, log, "LitServe")
            yield Peer("litserve", f"http://127.0.0.1:{port}/v2/models/tinyvit/infer", None, process.pid)
        finally:
            stop_group(process.pid, 20, process)  # SIGTERM, then SIGKILL to what is left
