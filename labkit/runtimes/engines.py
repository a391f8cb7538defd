"""MLServer runtimes that serve the exported TinyViT (``python -m labkit export``) with an
optimized engine instead of PyTorch, chosen by ``implementation`` in ``model-settings.json``:

    {
      "name": "tinyvit-onnxruntime",
      "implementation": "labkit.runtimes.engines.OnnxRuntimeTinyViT",
      "parameters": {"uri": "../../weights/tinyvit.onnx"}
    }

``labkit.runtimes.engines.OpenVINOTinyViT`` is the same with OpenVINO. MLServer ships neither (the
PyPI package ``mlserver-openvino`` is a third party's, unmaintained, and pins an old numpy).

Same contract as the TinyViT service, because these classes are that service with another
forward: its request decoding and 400s, its preprocessing (timm's settings recorded at export),
its softmax and its ``probabilities`` output, ``[N, 21841]``. With ``parameters.extra.top_k``
they answer ``labels`` and ``scores`` like the timm runtime. They load only an ONNX file that
``labkit.model.export`` compared with PyTorch on today's checkpoint. Threads: the cores split
between the parallel workers, as for the service (``cpu_threads``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from mlserver.errors import MLServerError
from mlserver.utils import get_model_uri

from labkit.model.export import NotVerified, onnx_runtime_forward, openvino_forward, verified_record
from labkit.runtimes.base import LabRuntime, RuntimeOptions, logger


class EngineTinyViT(LabRuntime):
    """The TinyViT service with ``self.model`` replaced by an engine's forward."""

    engine = "?"

    async def load(self) -> bool:
        # Imported where the model runs, not at the top: MLServer's main process imports this
        # module only to find the class (as tinyvit/serve-model.py explains).
        import torch
        from timm.data import create_transform

        from labkit.model.weights import labels

        self.options = RuntimeOptions.from_settings(self.settings)
        path = Path(await get_model_uri(self.settings))
        try:
            record = verified_record(path)
        except NotVerified as error:
            raise MLServerError(f"{self.engine}: {error}") from None
        threads = self.options.threads
        forward = self.engine_forward(path, threads)
        # classify() calls self.model(batch) on a torch tensor and takes the softmax of its answer.
        self.model = lambda batch: torch.from_numpy(np.asarray(forward(batch.numpy())))
        self.transform = create_transform(**record["data_config"])
        self.labels = labels()
        self.register_metrics()
        logger.info("TinyViT on %s with %d thread(s) in this process, from %s", self.engine, threads, path)
        return True

    def engine_forward(self, path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError


class OnnxRuntimeTinyViT(EngineTinyViT):
    engine = "ONNX Runtime"

    def engine_forward(self, path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        return onnx_runtime_forward(path, threads)


class OpenVINOTinyViT(EngineTinyViT):
    engine = "OpenVINO"

    def engine_forward(self, path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        return openvino_forward(path, threads)


ENGINES = {"onnxruntime": OnnxRuntimeTinyViT, "openvino": OpenVINOTinyViT}


def engine_model(engine: str, onnx_path: str | Path, **extra: object) -> EngineTinyViT:
    """The runtime ``engine`` (a key of ``ENGINES``) for ``onnx_path`` in this process, as
    MLServer would create it, its ``load()`` run."""
    from mlserver.settings import ModelParameters, ModelSettings

    from labkit.model.service import run_coroutine

    settings = ModelSettings(name=f"tinyvit-{engine}", implementation=ENGINES[engine],
                             parameters=ModelParameters(uri=str(onnx_path), extra=extra))
    model = ENGINES[engine](settings)
    run_coroutine(model.load())
    return model
