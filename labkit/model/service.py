"""The lab's TinyViT service (``tinyvit/serve-model.py``) imported in this process the way
MLServer imports it: the folder on ``sys.path``, the module named ``serve-model``. The
reference model of the checks, the timm runtime and the tests use this one copy of the
service's decoding and inference code, so what they compare with cannot drift from what is
served."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Coroutine, Iterator

from labkit.paths import DEFAULT_CHECKPOINT, REPO_ROOT, PathLike

if TYPE_CHECKING:
    import numpy as np
    from mlserver import MLModel

SERVICE_FOLDER = REPO_ROOT / "tinyvit"
MODULE_NAME = "serve-model"


# The name the lab's file takes when a student's own serve-model.py already holds "serve-model"
# in this process (MLServer imported it, and it imports labkit.runtimes).
PRIVATE_NAME = "labkit_lab_serve_model"


def service_module() -> ModuleType:
    """``tinyvit/serve-model.py`` (imported once; its helper modules come with it)."""
    known = sys.modules.get(MODULE_NAME)
    if known is not None and _is_the_labs(known):
        return known
    if known is not None:
        # helper session 16: a student's serve-model.py that imports labkit.runtimes (a class on
        # the lab's engine runtime) got its own half-imported module back here, and MLServer
        # said "partially initialized module 'serve-model'" about the student's line 1.
        return _private_copy()
    sys.path.insert(0, str(SERVICE_FOLDER))
    try:
        importlib.import_module(MODULE_NAME)
    finally:
        sys.path.remove(str(SERVICE_FOLDER))
    return sys.modules[MODULE_NAME]


def _is_the_labs(module: ModuleType) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve() == (SERVICE_FOLDER / f"{MODULE_NAME}.py").resolve()


def _private_copy() -> ModuleType:
    """The lab's file under :data:`PRIVATE_NAME`, its helper modules from the lab's folder."""
    if PRIVATE_NAME in sys.modules:
        return sys.modules[PRIVATE_NAME]
    spec = importlib.util.spec_from_file_location(PRIVATE_NAME, SERVICE_FOLDER / f"{MODULE_NAME}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PRIVATE_NAME] = module
    sys.path.insert(0, str(SERVICE_FOLDER))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PRIVATE_NAME]
        raise
    finally:
        sys.path.remove(str(SERVICE_FOLDER))
    return module


def helper(name: str) -> ModuleType:
    """One of the service's helper modules (``image_batch``, ``model_weights``, ``cpu_threads``,
    ``freed_memory``), as the service itself imported it."""
    service_module()
    return sys.modules[name]


def loaded_service(checkpoint: PathLike = DEFAULT_CHECKPOINT) -> MLModel:
    """A ``TinyViTModel`` whose ``load()`` has run here, on ``checkpoint``."""
    from mlserver.settings import ModelParameters, ModelSettings

    service = service_module()
    settings = ModelSettings(name="tinyvit", implementation=service.TinyViTModel,
                             parameters=ModelParameters(uri=str(checkpoint)))
    model = service.TinyViTModel(settings)
    with quiet_mlserver_logs():
        run_coroutine(model.load())
    return model


def with_threads(classify: Callable[[list], np.ndarray], threads: int) -> Callable[[list], np.ndarray]:
    """``classify`` run on ``threads`` torch threads, this process's own count restored after each
    call (notebook 05's challenge measures the engine alone with the threads one server process
    gets, whatever the kernel's torch was set to).

    Args:
        classify: a function of the images that runs torch (``TinyViTModel.classify``).
        threads: torch's intra-op threads for each call.
    """
    import torch

    def classify_on_threads(images: list) -> np.ndarray:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return classify(images)
        finally:
            torch.set_num_threads(before)
    return classify_on_threads


def run_coroutine(coroutine: Coroutine) -> object:
    """Run a service's coroutine to completion, also from a notebook cell (whose event loop
    is already running): in a thread of its own, with a loop of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@contextlib.contextmanager
def quiet_mlserver_logs() -> Iterator[None]:
    """MLServer's log lines (a name warning, the random-weights warning that notebooks show
    as a banner) belong in a server's log, not under a notebook cell."""
    logger = logging.getLogger("mlserver")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
