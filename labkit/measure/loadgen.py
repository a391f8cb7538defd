"""A closed-loop load generator for the lab's services, and its statistics.

``run_load(url, concurrency=8, duration=10)`` keeps ``concurrency`` requests in
flight (one thread each, each sending its next request as soon as the last one
answered) until ``duration`` seconds or ``max_requests`` requests, whichever
comes first. It records every request's latency and status and returns a
:class:`LoadResult`: a per-request table and a summary (throughput, p50/p95/p99
latency, errors). Loopback only: the lab never sends load elsewhere.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence, Union
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import requests
from tqdm.auto import tqdm

from labkit.client import CAT, encode_jpeg, files_request, load_image, pixels_request, request_body

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# One body sent again and again, or bodies that every caller takes in turn.
Body = Union[bytes, Sequence[bytes], "Bodies"]


class Bodies:
    """Request bodies that every caller of one load takes in turn, so that no two requests are
    alike until the list wraps around (05's challenge: a server that kept each image's answer
    served one repeated image 116 times as fast as its engine, helper session 16)."""

    def __init__(self, bodies: bytes | Sequence[bytes]):
        self.items = [bytes(bodies)] if isinstance(bodies, (bytes, bytearray)) else [bytes(body) for body in bodies]
        if not self.items:
            raise ValueError("no request body")
        self._turn = itertools.count()  # next() of a count is atomic under the GIL: callers share it
        self._grpc: dict[str, list] = {}

    def take(self) -> int:
        """The index of the next body to send."""
        return next(self._turn) % len(self.items)

    def grpc_messages(self, model: str) -> list:
        """The bodies as gRPC ``ModelInferRequest`` messages for ``model`` (made once)."""
        if model not in self._grpc:
            from mlserver.grpc.converters import ModelInferRequestConverter
            from mlserver.types import InferenceRequest

            from labkit.client import bytes_for_grpc

            self._grpc[model] = [ModelInferRequestConverter.from_types(
                bytes_for_grpc(InferenceRequest.model_validate_json(body)), model_name=model, model_version=None)
                for body in self.items]
        return self._grpc[model]


def varied_bodies(image: np.ndarray, count: int, seed: int | None = None) -> Bodies:
    """``count`` request bodies of one JPEG image each, every one with a row of pixels of its own:
    the image the engine decodes alone, but no two requests alike (helper session 16: a server
    that kept each image's answer served one repeated image at 116 times its engine's rate)."""
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(count):
        varied = image.copy()
        varied[rng.integers(image.shape[0])] = rng.integers(0, 256, image.shape[1:], dtype=np.uint8)
        bodies.append(request_body(files_request([encode_jpeg(varied)])))
    return Bodies(bodies)


def as_bodies(body: Body) -> Bodies:
    return body if isinstance(body, Bodies) else Bodies(body)

PAYLOADS = ("jpeg", "numpy")


def payload_body(payload: str = "jpeg", images: list[np.ndarray] | None = None) -> bytes:
    """The JSON body of one request: ``"jpeg"`` (compact BYTES) or ``"numpy"``
    (the course text's NumpyCodec pixels), for ``images`` (default: the cat).

    Args:
        payload: ``"jpeg"`` or ``"numpy"``.
        images: uint8 ``[H, W, 3]`` images (default: the cat).

    Raises:
        ValueError: another payload.
    """
    images = [load_image(CAT)] if images is None else list(images)
    if payload == "jpeg":
        return request_body(files_request([encode_jpeg(image) for image in images]))
    if payload == "numpy":
        return request_body(pixels_request(images))
    raise ValueError(f"payload must be one of {PAYLOADS}, not {payload!r}")


@dataclass
class LoadResult:
    table: pd.DataFrame
    summary: dict

    def _repr_html_(self):
        return pd.DataFrame([self.summary])._repr_html_()


def run_load(url: str, concurrency: int = 4, duration: float = 10, max_requests: int | None = None,
             payload: str = "jpeg", body: Body | None = None, images_per_request: int = 1,
             timeout: float = 30, progress: bool = True, grpc_model: str | None = None) -> LoadResult:
    """Send load to an ``.../infer`` URL on loopback (or, with ``grpc_model``, to
    that model on a ``host:port`` gRPC address); see the module docstring.

    Args:
        url: the ``.../infer`` URL, or with ``grpc_model`` the gRPC ``host:port``.
        concurrency: closed-loop callers.
        duration: seconds of load (with ``max_requests``: stops at whichever comes first).
        max_requests: stop after this many requests.
        payload: ``"jpeg"`` or ``"numpy"`` (see :func:`payload_body`), unless ``body`` is given.
        body: the request body every caller sends, or bodies the callers take in turn.
        images_per_request: images in each request.
        timeout: seconds a request may take before it counts as failed.
        progress: show a progress bar.
        grpc_model: the model's name, to send over gRPC instead of REST.

    Returns:
        a :class:`LoadResult`: counts, errors, throughput and latency quantiles.
    """
    _check_loopback(url if grpc_model is None else f"grpc://{url}")
    if concurrency < 1 or duration <= 0:
        raise ValueError("concurrency must be >= 1 and duration > 0")
    bodies = as_bodies(payload_body(payload) if body is None else body)
    make_sender = partial(sender, url, bodies, grpc_model, timeout)
    records, lock = [], threading.Lock()
    started = time.perf_counter()
    deadline = started + duration
    budget = [max_requests if max_requests is not None else float("inf")]
    bar = _progress_bar(max_requests, duration, progress)

    def take_ticket() -> bool:
        with lock:
            if budget[0] <= 0 or time.perf_counter() >= deadline:
                return False
            budget[0] -= 1
            return True

    def worker():
        send, close = make_sender()
        try:
            while take_ticket():
                sent = time.perf_counter()
                status = send()
                answered = time.perf_counter()
                with lock:
                    records.append((sent - started, (answered - sent) * 1000, status))
                    bar.update(1)
        finally:
            close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bar.close()
    elapsed = time.perf_counter() - started
    table = pd.DataFrame(records, columns=["sent_s", "latency_ms", "status"]).sort_values("sent_s",
                                                                                          ignore_index=True)
    return LoadResult(table, summarize(table, elapsed, concurrency, payload, images_per_request))


def summarize(table: pd.DataFrame, elapsed: float, concurrency: int, payload: str,
              images_per_request: int = 1) -> dict:
    """Throughput and latency percentiles of the successful requests of ``table``."""
    ok = table[table.status == 200]
    latencies = ok.latency_ms.to_numpy()
    percentile = (lambda q: float(np.percentile(latencies, q))) if len(latencies) else (lambda q: float("nan"))
    return {
        "payload": payload,
        "concurrency": concurrency,
        "requests": len(table),
        "errors": int((table.status != 200).sum()),
        "seconds": round(elapsed, 3),
        "throughput_rps": len(ok) / elapsed if elapsed > 0 else 0.0,
        "images_per_s": len(ok) * images_per_request / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(50),
        "p95_ms": percentile(95),
        "p99_ms": percentile(99),
    }


def sender(url: str, body: Body, grpc_model: str | None = None, timeout: float = 30) -> tuple[Callable[[], int],
                                                                                        Callable[[], None]]:
    """(send, close) for one caller that sends ``body`` again and again on one connection (or the
    next of its bodies each time): ``send()`` returns the HTTP status (0: no answer; for gRPC 200,
    or the gRPC code plus 1000).

    Args:
        url: the ``.../infer`` URL, or with ``grpc_model`` the gRPC ``host:port``.
        body: the request's JSON body, or bodies (a :class:`Bodies` shared with other callers).
        grpc_model: the model's name, to send over gRPC instead of REST.
        timeout: seconds a request may take.
    """
    _check_loopback(url if grpc_model is None else f"grpc://{url}")
    bodies = as_bodies(body)
    if grpc_model is None:
        return _rest_sender(url, bodies, timeout)
    return _grpc_sender(url, grpc_model, bodies, timeout)


def _rest_sender(url: str, bodies: Bodies, timeout: float):
    """(send, close) for one thread: POST the next body, return the HTTP status (0: no answer)."""
    session = requests.Session()

    def send() -> int:
        try:
            return session.post(url, data=bodies.items[bodies.take()], timeout=timeout,
                                headers={"Content-Type": "application/json"}).status_code
        except requests.RequestException:
            return 0

    return send, session.close


def _grpc_sender(address: str, model: str, bodies: Bodies, timeout: float):
    """(send, close) for one thread: the same requests over gRPC; 200 when it succeeds,
    else the gRPC status code plus 1000 (so it never looks like HTTP success)."""
    import grpc
    from mlserver.grpc import dataplane_pb2_grpc

    messages = bodies.grpc_messages(model)
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
    stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)

    def send() -> int:
        try:
            stub.ModelInfer(messages[bodies.take()], timeout=timeout)
            return 200
        except grpc.RpcError as error:
            return 1000 + error.code().value[0]

    return send, channel.close


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"run_load only sends load to this machine (127.0.0.1), not to {host!r}")


def _progress_bar(max_requests: int | None, duration: float | None, progress: bool) -> tqdm:
    from tqdm.auto import tqdm

    return tqdm(total=max_requests, desc=f"load ({duration:g} s max)", unit="req",
                disable=not progress, leave=False)
