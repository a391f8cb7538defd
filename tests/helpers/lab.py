"""What many tests share, imported by name (pytest's fixtures stay in ``tests/conftest.py``):
the repository's root, free ports, lab servers started and reloaded, the engine folder that
needs no torch, this session's mark on every process it starts, and skipping outside CI."""

import json
import os
import uuid
from pathlib import Path

import psutil
import pytest

from labkit.serving import ModelServer

REPO = Path(__file__).resolve().parents[2]
FREE_PORTS = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}


def skip_unless_ci(reason: str) -> None:
    """Skip a test that needs something this machine lacks; under CI=true, where
    `make test` installs everything, the same gap is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


# Every process this test session starts inherits this mark (graders, JupyterLab, kernels
# and the servers they start), so the session counts its own leftovers only: another
# student's, or another test run's, servers on the same machine are none of its business.
SESSION_MARK = "LAB_TEST_SESSION"
os.environ.setdefault(SESSION_MARK, uuid.uuid4().hex)


def lab_servers() -> list:
    """Lab servers this test session started that outlived their starter (left by notebooks
    that graders, JupyterLab or kernels ran): not running under this process, and marked as
    this session's."""
    me, mark = os.getpid(), os.environ[SESSION_MARK]
    leftovers = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if (any("mlserver-lab-" in part for part in (process.info["cmdline"] or []))
                    and me not in {parent.pid for parent in process.parents()}
                    and process.environ().get(SESSION_MARK) == mark):
                leftovers.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # ended meanwhile, or another user's
    return leftovers


def start_server(checkpoint, model_dir="tinyvit", **overrides) -> ModelServer:
    return ModelServer(model_dir, weights=checkpoint, **FREE_PORTS, **overrides).start(progress=False)


def engine_folder(parent: Path, checkpoint: Path) -> Path:
    """A model folder "tinyvit" in ``parent`` served by the lab's ONNX Runtime engine on the
    test checkpoint's verified reference export: no torch in any of its processes, so it is
    ready in about half the time with half the memory, and it answers like the PyTorch
    service. For tests of MLServer's plumbing (lifecycle, ports, orphans), where the PyTorch
    service is not what is tested; its starts are counted as "engine" in the run's record."""
    from labkit.model.reference import reference_onnx

    folder = Path(parent) / "tinyvit"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "tinyvit", "implementation": "labkit.runtimes.engines.OnnxRuntimeTinyViT",
        "parameters": {"uri": str(reference_onnx(checkpoint, quiet=True))}}))
    (folder / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 1}))  # as tinyvit/
    return folder


def reload_with(server: ModelServer, files: dict, **overrides) -> ModelServer:
    """``server`` with ``files`` (name -> text) written into its model folder and the model
    loaded again in place (seconds; a test that only changes code or model settings shares
    one server instead of starting one per variant)."""
    for name, text in files.items():
        (server.model_dir / name).write_text(text)
    return server.reload(**overrides)


# Callers at once against the shared batching server (tests/conftest.py's batching_server).
BATCH_CALLERS = 16
