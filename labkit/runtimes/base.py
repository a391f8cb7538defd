"""What every lab runtime shares: ``parameters.extra`` parsed once into :class:`RuntimeOptions`,
and one ``predict()``: the TinyViT service's request decoding, its batch-size metric, then
either its ``probabilities`` or the compact ``labels`` and ``scores`` of the ``top_k`` best.

The runtimes extend the lab's service class (``tinyvit/serve-model.py``), so a request that
the service refuses with a 400 is refused by every runtime in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import mlserver
import numpy as np
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse

from labkit.contract import BATCH_SIZE_METRIC, TOP_K_OUTPUTS
from labkit.model.reference import best_labels
from labkit.model.service import service_module

# The lab's service, tinyvit/serve-model.py, imported the way MLServer imports it: no import
# statement can name a file called "serve-model". It imports its helper modules itself; these
# are the names the runtimes share with it, each from the file named beside it.
_service = service_module()
TinyViTModel: type[mlserver.MLModel] = _service.TinyViTModel  # tinyvit/serve-model.py
decode_images = _service.decode_images  # tinyvit/image_batch.py: the request's images, or a 400
extra_parameters = _service.extra_parameters  # tinyvit/model_weights.py: parameters.extra as a dict
torch_threads = _service.torch_threads  # tinyvit/cpu_threads.py: this process's share of the cores
logger = _service.logger  # "mlserver.tinyvit": the service's lines in the server log


@dataclass(frozen=True)
class RuntimeOptions:
    """``parameters.extra`` of a runtime's model settings, read once and checked."""

    model: str | None = None  # a timm architecture (the timm runtime needs one)
    top_k: int | None = None  # answer labels and scores of the k best instead of probabilities
    threads: int = 1  # torch / engine threads for this process (the cores split between workers)

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> RuntimeOptions:
        extra = extra_parameters(settings)
        k = extra.get("top_k")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise MLServerError(f"parameters.extra.top_k is {k!r}: a whole number of labels, 1 or more")
        model = extra.get("model")
        if model is not None and not isinstance(model, str):
            raise MLServerError(f"parameters.extra.model is {model!r}: a timm model name")
        return cls(model=model, top_k=k, threads=torch_threads(extra))


class LabRuntime(TinyViTModel):
    """The service's ``predict()`` for every runtime; subclasses ``load()`` their model and set
    ``self.options`` (and ``self.labels`` for top-k answers)."""

    options = RuntimeOptions()
    labels: Sequence[str] = ()
    # The service's predict() reads it, and only the service's load() sets it: a runtime's own
    # load() leaves the memory to its engine (tinyvit/freed_memory.py measured the service only).
    return_freed_memory = False

    def register_metrics(self) -> None:
        mlserver.register(BATCH_SIZE_METRIC, "Images per predict() call, after adaptive batching")

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if self.options.top_k is None:
            return await super().predict(payload)
        images = decode_images(payload)
        mlserver.log(**{BATCH_SIZE_METRIC: len(images)})
        return top_k_response(self.name, self.classify(images), self.options.top_k, self.labels)


def top_k_response(model_name: str, probabilities: np.ndarray, k: int, names: Sequence[str]) -> InferenceResponse:
    """The runtimes' compact answer: ``labels`` (BYTES ``[N, k]``) and ``scores`` (FP32 ``[N, k]``).

    Labels go out as UTF-8 bytes: MLServer 1.7.1's gRPC converter fails on ``str`` elements
    ("expected bytes, str found", a 500 for every gRPC caller) while REST takes either."""
    labels, scores = best_labels(probabilities, k, names)
    labels = np.vectorize(str.encode, otypes=[object])(labels)
    label_output, score_output = TOP_K_OUTPUTS
    return InferenceResponse(model_name=model_name, outputs=[
        NumpyCodec.encode_output(label_output, labels),
        NumpyCodec.encode_output(score_output, scores),
    ])
