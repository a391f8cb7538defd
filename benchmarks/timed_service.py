"""The lab's TinyViT services with each stage of ``predict()`` timed (``benchmarks/breakdown.py``).

Named as the ``implementation`` of a scratch model folder, never of the student's: the classes
are the lab's PyTorch service (``tinyvit/serve-model.py``, ``TimedTinyViT``) and its OpenVINO
runtime (``labkit.runtimes.engines``, ``TimedOpenVINO``) unchanged, plus timers around what they
already do. Each stage's seconds go to a histogram on ``/metrics``, once per image of the call:
with one image per request, a histogram's mean is what one request waited for that stage, also
when adaptive batching merged several requests into one call.

The histograms carry the model's name as an explicit label and live in prometheus_client's own
registry, instead of going through ``mlserver.register()``/``log()``: MLServer 1.7.1 finds the
model for those from a context it sets only in parallel workers, and with ``parallel_workers: 0``
its ``/metrics`` shows prometheus_client's registry, not the one ``mlserver.register()`` fills
(issue #1151). This way both are timed: with workers, the values reach ``/metrics`` through the
multiprocess folder like MLServer's own; without, straight from the registry it shows.

Stages: ``decode`` (the request's images, ``image_batch.decode_images``), ``preprocess`` (timm's
transform, in torch in the service and in NumPy in the runtime, and the softmax: ``classify()``
without the forward pass), ``forward`` (the network, ``self.model``, or the engine,
``self.forward``) and ``answer`` (the rest of ``predict()``: the NumPy output and the
``InferenceResponse``).
"""

import time
from typing import Callable

from mlserver.types import InferenceRequest, InferenceResponse
from prometheus_client import REGISTRY, Histogram

from labkit.model.service import helper, service_module
from labkit.runtimes import base as runtime_base
from labkit.runtimes.engines import OpenVINOTinyViT

STAGES = ("decode", "preprocess", "forward", "answer")
METRIC = "tinyvit_stage_{}_seconds"
BATCH_METRIC = "tinyvit_timed_batch_images"  # images per predict() call, also without workers
_serve_model = service_module()  # tinyvit/serve-model.py, as the runtimes import it
# From its own module, never patched: MLServer may import this file more than once.
_decode_images = helper("image_batch").decode_images
_clock: dict = {}


def _timed(stage: str, function: Callable) -> Callable:
    """``function``, its seconds of each call kept in ``_clock[stage]``."""
    def timed(*args):
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            _clock[stage] = time.perf_counter() - started

    return timed


_timed_decode = _timed("decode", _decode_images)


# predict() finds decode_images among its module's names (the service's, or the runtimes' for a
# top-k answer): the timed one from now on.
_serve_model.decode_images = _timed_decode
runtime_base.decode_images = _timed_decode


def _histogram(name: str, description: str) -> Histogram:
    existing = REGISTRY._names_to_collectors.get(name)  # a model loaded again in the same process
    if existing is not None:
        return existing
    return Histogram(name, description, labelnames=["model_name", "model_version"], registry=REGISTRY)


class Timed:
    """Timers around ``load()``'s network and ``predict()``; mixed in before a lab service class."""

    network = "model"  # the attribute that load() sets to the network's call

    async def load(self) -> bool:
        ready = await super().load()
        labels = {"model_name": self.name, "model_version": self.version or ""}
        self.stage_histograms = {
            stage: _histogram(METRIC.format(stage), f"Seconds of predict()'s {stage} stage, once per image")
            .labels(**labels) for stage in STAGES}
        self.batch_histogram = _histogram(BATCH_METRIC, "Images per predict() call").labels(**labels)
        setattr(self, self.network, _timed("forward", getattr(self, self.network)))
        return ready

    def classify(self, images: list):
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
        images = response.outputs[0].shape[0]
        self.batch_histogram.observe(images)
        for _ in range(images):
            for stage, value in seconds.items():
                self.stage_histograms[stage].observe(value)
        return response


class TimedTinyViT(Timed, _serve_model.TinyViTModel):
    """The lab's PyTorch service, timed."""


class TimedOpenVINO(Timed, OpenVINOTinyViT):
    """The lab's OpenVINO runtime, timed."""

    network = "forward"  # the engine's forward pass (the runtime has no torch model)
