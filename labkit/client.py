"""Build Open Inference Protocol requests for TinyViT and call the server.

Two ways to send images, both with a leading batch axis:

* pixels: ``pixels_request(images)`` -> UINT8 ``[N, H, W, 3]`` via ``NumpyCodec``
  (what the course text sends; large, and one image size per batch);
* files: ``files_request(jpegs)`` -> BYTES ``[N]`` of PNG/JPEG files, base64 in
  JSON (compact, and images of different sizes can share a batch).

``infer`` posts over REST, ``infer_grpc`` over gRPC; both return the decoded
output as a NumPy array and turn an error answer into ``InferenceFailed`` with
the server's own message.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import requests
from mlserver.codecs import Base64Codec, NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from PIL import Image

from labkit.contract import INPUT_NAME
from labkit.paths import REPO_ROOT, PathLike

CAT = REPO_ROOT / "imgs" / "cat.jpg"


class InferenceFailed(RuntimeError):
    """An error answer: ``status`` is the HTTP status, or the gRPC status code's number."""

    def __init__(self, status: int, message: str, protocol: str = "HTTP", code_name: str = ""):
        label = f"gRPC {code_name or status}" if protocol == "gRPC" else f"HTTP {status}"
        # helper session 10: a bare "HTTP 500: Internal Server Error" from a notebook's demo cell
        where = (" (an error inside the server, in the model's code: the server's log says which, "
                 "<your server>.log_tail())" if protocol == "HTTP" and status >= 500 else "")
        super().__init__(f"{label}: {message}{where}")
        self.status = status
        self.message = message
        self.protocol = protocol
        self.label = label  # "HTTP 500", "gRPC INTERNAL"

    @property
    def inside_the_server(self) -> bool:
        """An error of the model's code (HTTP 5xx; gRPC INTERNAL or UNKNOWN), not of the request."""
        return self.status >= 500 if self.protocol == "HTTP" else self.status in (2, 13)


def load_image(path: PathLike | io.BytesIO = CAT, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as the array a request carries.

    Args:
        path: an image file (JPEG, PNG, ...) or its bytes in a ``BytesIO``; the lab's cat by default.
        size: ``(width, height)`` to resize to, or None to keep the file's size.

    Returns:
        An RGB uint8 array of shape ``[H, W, 3]``.

    Example:
        >>> load_image(size=(224, 224)).shape
        (224, 224, 3)
    """
    with Image.open(path) as opened:
        image = opened.convert("RGB")
        if size is not None:
            image = image.resize(size)
        return np.asarray(image)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """Encode an image as a JPEG file, the compact input of notebook 02 onwards.

    Args:
        image: a uint8 ``[H, W, 3]`` RGB array.
        quality: JPEG quality, 1-95.

    Returns:
        The bytes of a JPEG file (what :func:`files_request` sends).
    """
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def pixels_request(images: Sequence[np.ndarray] | np.ndarray) -> InferenceRequest:
    """An Open Inference Protocol request of raw pixels, the course text's input.

    Args:
        images: same-size uint8 ``[H, W, 3]`` images, or one array ``[N, H, W, 3]``.

    Returns:
        An ``InferenceRequest`` with one UINT8 input ``"payload"`` of shape ``[N, H, W, 3]``
        (NumpyCodec).

    Raises:
        ValueError: the images do not make a 4-D batch (a lone image needs ``image[None]``).

    Example:
        >>> outputs = infer_outputs(server.infer_url, pixels_request([load_image()]))
    """
    batch = np.stack(list(images)) if not isinstance(images, np.ndarray) else images
    if batch.ndim != 4:
        raise ValueError(f"expected [N, H, W, 3] images, got shape {batch.shape}; add a batch axis with image[None]")
    return InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, batch.astype(np.uint8))])


def files_request(files: Sequence[bytes]) -> InferenceRequest:
    """An Open Inference Protocol request of encoded image files, of any sizes.

    Args:
        files: the bytes of each image file (JPEG, PNG, ...), e.g. from :func:`encode_jpeg`.

    Returns:
        An ``InferenceRequest`` with one BYTES input ``"payload"`` of shape ``[N]``, base64
        in JSON; each image gets its own row in the answer.
    """
    files = [bytes(data) for data in files]
    return InferenceRequest(inputs=[Base64Codec.encode_input(INPUT_NAME, files, use_bytes=False)])


def request_body(request: InferenceRequest) -> bytes:
    """The JSON body for ``request`` (``model_dump_json``: ``.dict()`` is deprecated)."""
    return request.model_dump_json(exclude_none=True).encode()


def infer(url: str, request: InferenceRequest, output: str | None = None, session: requests.Session | None = None,
          timeout: float = 60) -> np.ndarray:
    """Send ``request`` over REST and return one output.

    Args:
        url: the model's ``.../v2/models/<name>/infer`` URL (``server.infer_url``).
        request: an ``InferenceRequest`` (:func:`pixels_request`, :func:`files_request`).
        output: the output's name; None for the first one.
        session: a ``requests.Session`` to reuse connections, or None.
        timeout: seconds to wait for the answer.

    Returns:
        The output as a NumPy array of its shape and datatype.

    Raises:
        InferenceFailed: the server answered with an error (its status and message).
    """
    return _pick(infer_outputs(url, request, session, timeout), output)


def infer_outputs(url: str, request: InferenceRequest, session: requests.Session | None = None,
                  timeout: float = 60) -> dict:
    """Send ``request`` over REST and return every output.

    Args:
        url: the model's ``.../infer`` URL (``server.infer_url``).
        request: an ``InferenceRequest``.
        session: a ``requests.Session`` to reuse connections, or None.
        timeout: seconds to wait for the answer.

    Returns:
        ``{output name: NumPy array}``, e.g. ``{"labels": ..., "scores": ...}`` from the
        top-5 service.

    Raises:
        InferenceFailed: the server answered with an error (its status and message).
    """
    http = session or requests
    answer = http.post(url, data=request_body(request), timeout=timeout,
                       headers={"Content-Type": "application/json"})
    return decode_outputs(_checked(answer).json())


def decode_outputs(response_json: dict) -> dict:
    """The outputs of a JSON inference response as NumPy arrays of their shapes."""
    response = InferenceResponse.model_validate(response_json)
    return {output.name: decode_output(output) for output in response.outputs}


def decode_output(output: ResponseOutput) -> np.ndarray:
    """One output as a NumPy array of its shape (BYTES as text)."""
    if output.datatype == "BYTES":
        data = getattr(output.data, "root", output.data)
        return np.array([d.decode() if isinstance(d, bytes) else d for d in data], dtype=object).reshape(output.shape)
    return NumpyCodec.decode_output(output)


def _pick(outputs: dict, output: str | None = None) -> np.ndarray:
    if output is None:
        return next(iter(outputs.values()))
    if output not in outputs:
        raise KeyError(f"no output {output!r} in {list(outputs)}")
    return outputs[output]


def _checked(answer: requests.Response) -> requests.Response:
    if answer.status_code != 200:
        try:
            message = answer.json().get("error") or answer.text
        except ValueError:
            message = answer.text
        raise InferenceFailed(answer.status_code, message)
    return answer


def infer_grpc(address: str, model: str, request: InferenceRequest, output: str | None = None,
               timeout: float = 60) -> np.ndarray:
    """The same inference over gRPC (``address`` is ``host:port``)."""
    import grpc
    from mlserver.grpc import dataplane_pb2_grpc
    from mlserver.grpc.converters import ModelInferRequestConverter, ModelInferResponseConverter

    message = ModelInferRequestConverter.from_types(bytes_for_grpc(request), model_name=model, model_version=None)
    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            reply = stub.ModelInfer(message, timeout=timeout)
        except grpc.RpcError as error:
            raise InferenceFailed(error.code().value[0], error.details(), protocol="gRPC",
                                  code_name=error.code().name) from None
    response = ModelInferResponseConverter.to_types(reply)
    return _pick(decode_outputs(response.model_dump()), output)


def bytes_for_grpc(request: InferenceRequest) -> InferenceRequest:
    """gRPC carries BYTES as bytes: turn base64 text elements into their ASCII bytes
    (the service decodes base64 either way)."""
    copy = request.model_copy(deep=True)
    for request_input in copy.inputs:
        data = getattr(request_input.data, "root", request_input.data)
        if request_input.datatype == "BYTES":
            request_input.data = [item.encode("ascii") if isinstance(item, str) else item for item in data]
    return copy
