"""Shared fixtures: a deterministic random checkpoint, the in-process reference
model, and real MLServer processes on free loopback ports."""

import json
from pathlib import Path

import numpy as np
import pytest

from labkit.model.reference import InProcessModel
from labkit.client import CAT, load_image
from labkit.workspace import lab_service_copy
from tests.helpers.lab import BATCH_CALLERS, start_server
from tests.helpers.weights import random_checkpoint


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    """A random TinyViT (seed 0), kept in .lab/test-weights/ with its reference export."""
    return random_checkpoint()


@pytest.fixture(scope="session")
def reference(checkpoint) -> InProcessModel:
    return InProcessModel(checkpoint)


@pytest.fixture(scope="session")
def cat() -> np.ndarray:
    return load_image(CAT)


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
    names that mistake (tests/checks/test_live.py); test_batching checks what two workers answer."""
    folder = lab_service_copy(tmp_path_factory.mktemp("scaled") / "scaled", checkpoint=checkpoint)
    (folder / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 2,
                                                      "max_batch_size": 8, "max_batch_time": 0.01}))
    (folder / "model-settings.json").write_text(json.dumps({"name": "scaled",
                                                            "implementation": "serve-model.TinyViTModel"}))
    server = start_server(checkpoint, model_dir=folder)
    yield server
    server.stop()
