"""Shared fixtures: a deterministic random checkpoint, the in-process reference
model, and real MLServer processes on free loopback ports."""

import json
import os
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest

from labkit.model import weights
from labkit.model.reference import InProcessModel
from labkit.client import CAT, load_image
from labkit.serving.server import ModelServer
from labkit.workspace import lab_service_copy

REPO = Path(__file__).resolve().parent.parent
FREE_PORTS = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return weights.write_random_checkpoint(tmp_path_factory.mktemp("weights") / "tinyvit.safetensors")


@pytest.fixture(scope="session")
def reference(checkpoint) -> InProcessModel:
    return InProcessModel(checkpoint)


@pytest.fixture(scope="session")
def cat() -> np.ndarray:
    return load_image(CAT)


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


# Servers shared by every test that does not change their settings (each start costs
# 10-20 s): tests that use them compare counters as differences, never as totals.
@pytest.fixture(scope="session")
def server(checkpoint):
    """TinyViT as the model folder configures it (one worker, no batching)."""
    server = start_server(checkpoint)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_without_workers(checkpoint):
    """The model in MLServer's main process (``parallel_workers: 0``)."""
    server = start_server(checkpoint, parallel_workers=0)
    yield server
    server.stop()


BATCH_CALLERS = 16


@pytest.fixture(scope="session")
def batching_server(checkpoint):
    """Adaptive batching with a long max_batch_time, so that concurrent requests really
    share batches (one worker)."""
    server = start_server(checkpoint, max_batch_size=BATCH_CALLERS, max_batch_time=0.2)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def two_workers_server(checkpoint, tmp_path_factory):
    """Two parallel workers, set up as the course text does it: its batching keys are in
    settings.json, where MLServer ignores them (so no batching). Notebook 05's scaling check
    names that mistake (test_checks); test_batching checks what two workers answer."""
    folder = lab_service_copy(tmp_path_factory.mktemp("scaled") / "scaled", checkpoint=checkpoint)
    (folder / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 2,
                                                      "max_batch_size": 8, "max_batch_time": 0.01}))
    (folder / "model-settings.json").write_text(json.dumps({"name": "scaled",
                                                            "implementation": "serve-model.TinyViTModel"}))
    server = start_server(checkpoint, model_dir=folder)
    yield server
    server.stop()
