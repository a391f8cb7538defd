"""The lab's TinyViT service (``tinyvit/serve-model.py``) imported in this process the way
MLServer imports it: the folder on ``sys.path``, the module named ``serve-model``. The
reference model of the checks, the timm runtime and the tests use this one copy of the
service's decoding and inference code, so what they compare with cannot drift from what is
served."""

import asyncio
import importlib
import logging
import sys
from types import ModuleType

from .paths import DEFAULT_CHECKPOINT, REPO_ROOT

SERVICE_FOLDER = REPO_ROOT / "tinyvit"
MODULE_NAME = "serve-model"


def service_module() -> ModuleType:
    """``tinyvit/serve-model.py`` (imported once; its helper modules come with it)."""
    if MODULE_NAME not in sys.modules:
        sys.path.insert(0, str(SERVICE_FOLDER))
        try:
            importlib.import_module(MODULE_NAME)
        finally:
            sys.path.remove(str(SERVICE_FOLDER))
    return sys.modules[MODULE_NAME]


def image_batch() -> ModuleType:
    """The service's request decoding and checks (``tinyvit/image_batch.py``)."""
    service_module()
    return sys.modules["image_batch"]


def loaded_service(checkpoint=DEFAULT_CHECKPOINT):
    """A ``TinyViTModel`` whose ``load()`` has run here, on ``checkpoint``."""
    from mlserver.settings import ModelParameters, ModelSettings

    service = service_module()
    settings = ModelSettings(name="tinyvit", implementation=service.TinyViTModel,
                             parameters=ModelParameters(uri=str(checkpoint)))
    model = service.TinyViTModel(settings)
    logger = logging.getLogger("mlserver")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the random-weights warning: notebooks show a banner instead
    try:
        asyncio.run(model.load()) if not _loop_running() else _run_in_thread(model.load())
    finally:
        logger.setLevel(level)
    return model


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_in_thread(coroutine):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
