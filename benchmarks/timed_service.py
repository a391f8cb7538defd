"""The lab's TinyViT service with each stage of ``predict()`` timed (``benchmarks/breakdown.py``).

Copied next to ``serve-model.py`` in a scratch service folder, never into the student's: the
class is the lab's ``TinyViTModel`` unchanged, plus timers around what it already does. Each
stage's seconds go to a custom metric (a histogram on ``/metrics``, so the server needs
``parallel_workers`` of at least 1, MLServer issue #1151), once per image of the call: with one
image per request, a histogram's mean is what one request waited for that stage, also when
adaptive batching merged several requests into one call.

Stages: ``decode`` (the request's images, ``image_batch.decode_images``), ``preprocess`` (timm's
transform and the softmax: ``classify()`` without the forward pass), ``forward`` (the network,
from torch forward hooks) and ``answer`` (the rest of ``predict()``: the NumPy output and the
``InferenceResponse``).
"""

import importlib.util
import time
from pathlib import Path

import mlserver
import numpy as np
from mlserver.types import InferenceRequest, InferenceResponse

_spec = importlib.util.spec_from_file_location("serve_model", Path(__file__).with_name("serve-model.py"))
serve_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve_model)

STAGES = ("decode", "preprocess", "forward", "answer")
METRIC = "tinyvit_stage_{}_seconds"
_decode_images = serve_model.decode_images
_clock: dict = {}


def _timed_decode(payload: InferenceRequest) -> list:
    started = time.perf_counter()
    try:
        return _decode_images(payload)
    finally:
        _clock["decode"] = time.perf_counter() - started


# predict() finds decode_images among its module's names: the timed one from now on.
serve_model.decode_images = _timed_decode


class TimedTinyViT(serve_model.TinyViTModel):
    async def load(self) -> bool:
        ready = await super().load()
        for stage in STAGES:
            mlserver.register(METRIC.format(stage), f"Seconds of predict()'s {stage} stage, once per image")
        self.model.register_forward_pre_hook(lambda *_: _clock.__setitem__("forward_started", time.perf_counter()))
        self.model.register_forward_hook(
            lambda *_: _clock.__setitem__("forward", time.perf_counter() - _clock["forward_started"]))
        return ready

    def classify(self, images: list) -> np.ndarray:
        started = time.perf_counter()
        probabilities = super().classify(images)
        _clock["classify"] = time.perf_counter() - started
        return probabilities

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        # No await inside the base predict(): one call's clock is not mixed with another's.
        _clock.clear()
        started = time.perf_counter()
        response = await super().predict(payload)
        total = time.perf_counter() - started
        seconds = {"decode": _clock["decode"], "preprocess": _clock["classify"] - _clock["forward"],
                   "forward": _clock["forward"], "answer": total - _clock["decode"] - _clock["classify"]}
        for _ in range(response.outputs[0].shape[0]):
            mlserver.log(**{METRIC.format(stage): value for stage, value in seconds.items()})
        return response
