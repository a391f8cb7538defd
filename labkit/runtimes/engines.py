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
``classify()``: its request decoding and 400s, its ``probabilities`` output, ``[N, 21841]``, and
the same numbers: timm's preprocessing (the settings recorded at export) in NumPy and PIL, equal
bit for bit (``labkit.model.pixels``), the engine's forward pass, the softmax. No torch: with
torch and timm imported for the preprocessing, as before 2026-12-06, the OpenVINO server of
``runtimes/`` was ready in 8.4 s and held 1157 MB; without, 3.8 s and 505 MB
(``benchmarks/results/starts-2026-12-06.md``, side by side). With ``parameters.extra.top_k``
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
from labkit.model.pixels import probabilities
from labkit.runtimes.base import LabRuntime, RuntimeOptions, logger


class EngineTinyViT(LabRuntime):
    """The TinyViT service with an engine's forward pass, and no torch.

    Args:
        settings: MLServer's model settings: ``parameters.uri`` the ONNX export, verified
            against PyTorch (``make onnx``); ``parameters.extra.torch_threads`` the engine's threads
            (default: this process's share of the cores).

    Raises:
        MLServerError: from ``load()``, for an export that was not verified against PyTorch.
    """

    engine = "?"

    async def load(self) -> bool:
        # No torch in this process: the engine runs the network, and timm's preprocessing runs in
        # NumPy and PIL (labkit.model.pixels, equal to timm's transform bit for bit). Importing
        # torch and timm made a start 2.2 times as long and the server 2.3 times as heavy (above).
        from labkit.model.pixels import check_config
        from labkit.model.weights import labels

        self.options = RuntimeOptions.from_settings(self.settings)
        path = Path(await get_model_uri(self.settings))
        try:
            record = verified_record(path)
        except NotVerified as error:
            raise MLServerError(f"{self.engine}: {error}") from None
        self.data_config = record["data_config"]
        check_config(self.data_config)
        threads = self.options.threads
        self.forward = self.engine_forward(path, threads)
        self.labels = labels()
        self.register_metrics()
        logger.info("TinyViT on %s with %d thread(s) in this process, from %s", self.engine, threads, path)
        return True

    def classify(self, images: list[np.ndarray]) -> np.ndarray:
        """Probabilities ``[N, 21841]``, as the service's ``classify()`` gives them."""
        return probabilities(self.forward, images, self.data_config)

    def engine_forward(self, path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError


class OnnxRuntimeTinyViT(EngineTinyViT):
    """The TinyViT service on ONNX Runtime (``implementation: labkit.runtimes.engines.OnnxRuntimeTinyViT``): its
    ``settings`` and errors are :class:`EngineTinyViT`'s."""

    engine = "ONNX Runtime"

    def engine_forward(self, path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        return onnx_runtime_forward(path, threads)


class OpenVINOTinyViT(EngineTinyViT):
    """The TinyViT service on OpenVINO (``implementation: labkit.runtimes.engines.OpenVINOTinyViT``): its
    ``settings`` and errors are :class:`EngineTinyViT`'s."""

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
