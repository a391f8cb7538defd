"""Decode and check the images of a TinyViT request (the service's input contract).

Input ``payload``, always with a leading batch axis:
  * UINT8 pixels, shape ``[N, H, W, 3]`` (what ``NumpyCodec`` sends), or
  * BYTES, shape ``[N]`` or ``[N, 1]``: encoded PNG/JPEG files (base64 strings over JSON
    with ``content_type: base64``, raw bytes over gRPC). Sizes may differ.

Anything else raises :class:`BadRequest`, which MLServer answers with HTTP 400 and the
message, so a client learns what to send and the server keeps serving.
"""

import io

import numpy as np
from mlserver.codecs import Base64Codec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, RequestInput
from PIL import Image

INPUT_NAME = "payload"
MAX_IMAGES = 64
MAX_SIDE = 4096
Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE


class BadRequest(MLServerError):
    """A request the service cannot use; MLServer answers it with HTTP 400."""

    def __init__(self, message: str):
        super().__init__(message, status_code=400)


def decode_images(request: InferenceRequest) -> list[np.ndarray]:
    """The request's images as a list of ``[H, W, 3]`` uint8 arrays, or BadRequest."""
    request_input = find_input(request)
    if request_input.datatype == "UINT8":
        images = list(decode_pixels(request_input))
    elif request_input.datatype == "BYTES":
        images = decode_files(request_input)
    else:
        raise BadRequest(
            f"Input '{INPUT_NAME}' has datatype {request_input.datatype}. Send UINT8 "
            "pixels with shape [N, H, W, 3] (NumpyCodec on a uint8 array) or BYTES "
            "with shape [N] holding PNG/JPEG files."
        )
    if not images:
        raise BadRequest("The batch is empty: send at least one image.")
    if len(images) > MAX_IMAGES:
        raise BadRequest(f"{len(images)} images in one request; the limit is {MAX_IMAGES}.")
    return images


def find_input(request: InferenceRequest) -> RequestInput:
    for request_input in request.inputs:
        if request_input.name == INPUT_NAME:
            return request_input
    names = [request_input.name for request_input in request.inputs]
    raise BadRequest(f"No input named '{INPUT_NAME}' (got {names}). Name the image input '{INPUT_NAME}'.")


def decode_pixels(request_input: RequestInput) -> np.ndarray:
    """UINT8 ``[N, H, W, 3]`` pixels, checked against their declared shape."""
    shape = list(request_input.shape)
    if len(shape) == 4 and shape[1] == 3 and shape[3] != 3:
        # One advice per cause: the batch axis is there, the colours come first (channels-first).
        raise BadRequest(f"UINT8 input shape {shape} is not [N, H, W, 3]: the colour axis comes "
                         "first, and the service expects it last (height, width, then RGB).")
    if len(shape) == 3 and shape[2] == 3:
        raise BadRequest(f"UINT8 input shape {shape} is not [N, H, W, 3]. Add the leading batch "
                         "axis (image[None] for one image).")
    if len(shape) != 4 or shape[3] != 3:
        raise BadRequest(f"UINT8 input shape {shape} is not [N, H, W, 3]: send RGB images "
                         "(three colour values per pixel, last) with a leading batch axis.")
    n, height, width, _ = shape
    if n < 1:
        raise BadRequest("The batch is empty: send at least one image.")
    if min(height, width) < 1 or max(height, width) > MAX_SIDE:
        raise BadRequest(f"Image size {height}x{width} is outside 1..{MAX_SIDE} pixels per side.")
    try:
        values = np.asarray(getattr(request_input.data, "root", request_input.data)).ravel()
    except ValueError:
        values = None
    if values is None or values.size != n * height * width * 3:
        count = "a ragged nested list" if values is None else values.size
        # Under adaptive batching MLServer concatenates requests before the model sees
        # them: arrays of different sizes end up here.
        raise BadRequest(
            f"Shape {shape} needs {n * height * width * 3} values but the request holds "
            f"{count}. If adaptive batching is on, arrays of different image sizes "
            "cannot share a batch: send encoded images (BYTES, content_type 'base64') "
            "or resize all images to one size."
        )
    if values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255:
        raise BadRequest("UINT8 data must be integers in 0..255.")
    return values.astype(np.uint8).reshape(n, height, width, 3)


def decode_files(request_input: RequestInput) -> list[np.ndarray]:
    """BYTES ``[N]`` (or ``[N, 1]``) of PNG/JPEG files, each opened as RGB pixels."""
    shape = list(request_input.shape)
    files = Base64Codec.decode_input(request_input)
    # [N, 1] is what MLServer's Base64Codec and StringCodec produce.
    if shape not in ([len(files)], [len(files), 1]):
        raise BadRequest(
            f"BYTES input shape {shape} does not match the {len(files)} files sent: "
            "use shape [N] (or [N, 1]) with one PNG/JPEG file per element."
        )
    return [open_image(index, data) for index, data in enumerate(files)]


def open_image(index: int, data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if max(image.size) > MAX_SIDE:
                raise BadRequest(f"Image {index} is {image.size[0]}x{image.size[1]}; the limit is {MAX_SIDE} per side.")
            return np.asarray(image.convert("RGB"))
    except BadRequest:
        raise
    except Exception as error:  # PIL raises many kinds for bad files
        raise BadRequest(
            f"Element {index} of '{INPUT_NAME}' is not a PNG/JPEG image ({error}). Send "
            "the file's bytes, base64-encoded over JSON (content_type 'base64')."
        ) from None
