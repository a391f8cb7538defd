"""NVIDIA Triton serving the lab's TinyViT, started from a notebook or the benchmark.

Triton is the server the Open Inference Protocol comes from (MLServer implements Triton's V2
protocol), so the requests of notebook 02 reach it unchanged: notebook 05 sends them to both
servers. It runs in an environment of its own, ``.venv-triton`` (``make triton``, about 570 MB),
because ``nvidia-pytriton`` pins numpy below 2 and the lab pins 2.4; :func:`missing` says when
it is not there. :func:`triton` starts ``labkit/runtimes/triton_model.py`` with that environment's Python on free
loopback ports, waits until both its models are ready, and stops its whole process group
afterwards, also when the block fails or the kernel dies.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from labkit.paths import REPO_ROOT, PathLike
from labkit.serving.processes import die_with_parent, free_port, stop_group, wait_until_serving

TRITON_ENVIRONMENT = REPO_ROOT / ".venv-triton"
TRITON_PYTHON = TRITON_ENVIRONMENT / "bin" / "python"
MODEL_SCRIPT = Path(__file__).parent.parent / "runtimes" / "triton_model.py"
MODELS = ("tinyvit", "tinyvit-jpeg")  # pixels as notebook 02 sends them; JPEG files as the benchmark does


@dataclass
class TritonServer:
    http_url: str  # http://127.0.0.1:<port>
    grpc_address: str  # 127.0.0.1:<port>
    pid: int  # of triton_model.py; tritonserver and its Python stubs run below it, in its group

    def infer_url(self, model: str = "tinyvit") -> str:
        return f"{self.http_url}/v2/models/{model}/infer"


def missing() -> str | None:
    """Why Triton cannot run here, or None."""
    if not (TRITON_ENVIRONMENT / ".installed").exists():
        return ("Triton's environment is not built: run `make triton` in a terminal (nvidia-pytriton with its "
                "own numpy<2, about 570 MB)")
    return None


@contextlib.contextmanager
def serve(onnx: PathLike, max_batch_size: int = 8, max_batch_time: float = 0.004, threads: int = 0,
          timeout: float = 120) -> Iterator[TritonServer]:
    """Triton serving ``onnx`` (a verified export: ``python -m labkit export``; the script refuses
    any other, and the error says what to run) in OpenVINO, as the lab's OpenVINO runtime does,
    with the tuned MLServer's batching."""
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    http, grpc, metrics = free_port(), free_port(), free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(TRITON_PYTHON), str(MODEL_SCRIPT), "--onnx", str(onnx), "--http-port", str(http),
             "--grpc-port", str(grpc), "--metrics-port", str(metrics), "--max-batch-size", str(max_batch_size),
             "--max-batch-time", str(max_batch_time), "--threads", str(threads)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent)
        try:
            server = TritonServer(f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}", process.pid)
            for model in MODELS:
                wait_until_serving(process, f"{server.http_url}/v2/models/{model}/ready", timeout, log, "Triton")
            yield server
        finally:
            # SIGTERM: the script stops Triton and its stubs; whatever is left of the group gets SIGKILL.
            stop_group(process.pid, 20, process)
