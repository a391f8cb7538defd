"""TinyViT (timm ``tiny_vit_5m_224.dist_in22k``) served by MLServer.

Request: one input named ``payload`` holding a batch of images, either
  * UINT8 pixels, shape ``[N, H, W, 3]`` (what ``NumpyCodec`` sends), or
  * BYTES, shape ``[N]`` or ``[N, 1]``: encoded PNG/JPEG files (base64 strings over JSON with
    ``content_type: base64``, raw bytes over gRPC). Sizes may differ.
Response: one output named ``probabilities``, FP32, shape ``[N, 21841]``.

Why no ``@decode_args``: with adaptive batching on, MLServer concatenates the
requests of a batch along axis 0 without checking them. Arrays of different
sizes then no longer fit the merged shape, and ``@decode_args`` fails with a
500 for every caller. Decoding by hand lets the service check the batch and
answer 400 with a message that says what to send instead.
"""

import io
import json
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
import timm
import torch
import mlserver
from mlserver import MLModel
from mlserver.codecs import Base64Codec, NumpyCodec
from mlserver.errors import InvalidModelURI, MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, RequestInput
from mlserver.utils import get_model_uri
from PIL import Image
from timm.data import create_transform, resolve_data_config

ARCHITECTURE = "tiny_vit_5m_224.dist_in22k"
CHECKPOINT_NAMES = ["tinyvit.safetensors", "model.safetensors", "tinyvit.pth", "pytorch_model.bin"]
INPUT_NAME = "payload"
OUTPUT_NAME = "probabilities"
BATCH_SIZE_METRIC = "tinyvit_batch_size"
MAX_IMAGES = 64
MAX_SIDE = 4096
RANDOM_WEIGHTS_ENV = "TINYVIT_ALLOW_RANDOM_WEIGHTS"
HOW_TO_GET_WEIGHTS = (
    "Save the pretrained checkpoint while online with "
    "`python -m labkit.weights download` and point `parameters.uri` in "
    "model-settings.json at it, or (offline, for practice only) allow random "
    f"weights with {RANDOM_WEIGHTS_ENV}=1 or `parameters.extra.allow_random_weights`."
)

logger = logging.getLogger("mlserver.tinyvit")
Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE


class BadRequest(MLServerError):
    """A request the service cannot use; MLServer answers it with HTTP 400."""

    def __init__(self, message: str):
        super().__init__(message, status_code=400)


class TinyViTModel(MLModel):
    async def load(self) -> bool:
        extra = self._extra()
        threads = self._torch_threads(extra)
        torch.set_num_threads(threads)
        logger.info("TinyViT uses %d torch thread(s) in this process", threads)
        self.model = await self._build_model(extra)
        self.model.eval()
        self.transform = create_transform(**resolve_data_config({}, model=self.model))
        # Shown on /metrics (only with parallel_workers > 0: MLServer issue #1151).
        mlserver.register(BATCH_SIZE_METRIC, "Images per predict() call, after adaptive batching")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = decode_images(payload)
        mlserver.log(**{BATCH_SIZE_METRIC: len(images)})
        probabilities = self.classify(images)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(OUTPUT_NAME, probabilities)],
        )

    def classify(self, images: list) -> np.ndarray:
        """Probabilities ``[N, 21841]`` for a list of ``[H, W, 3]`` uint8 images."""
        batch = torch.stack([self.transform(Image.fromarray(image)) for image in images])
        with torch.inference_mode():
            return self.model(batch).softmax(dim=-1).numpy()

    def _extra(self) -> dict:
        parameters = self.settings.parameters
        return dict(parameters.extra or {}) if parameters else {}

    def _torch_threads(self, extra: dict) -> int:
        # Each parallel worker is a process with its own torch thread pool:
        # split the cores between them instead of letting each take them all.
        if "torch_threads" in extra:
            return max(1, int(extra["torch_threads"]))
        cores = len(os.sched_getaffinity(0))
        in_worker = multiprocessing.current_process().name != "MainProcess"
        workers = self._parallel_workers() if in_worker else 1
        return max(1, cores // max(1, workers))

    def _parallel_workers(self) -> int:
        if "MLSERVER_PARALLEL_WORKERS" in os.environ:
            return int(os.environ["MLSERVER_PARALLEL_WORKERS"])
        source = getattr(self.settings, "_source", None)
        settings_file = Path(source).parent / "settings.json" if source else None
        if settings_file and settings_file.is_file():
            return int(json.loads(settings_file.read_text()).get("parallel_workers", 1))
        return 1

    async def _build_model(self, extra: dict) -> torch.nn.Module:
        """Weights from ``parameters.uri``, else the hub cache, else (only if
        explicitly allowed) random weights; otherwise a clear error."""
        # MLServer sets parameters.uri to the model folder when it is missing:
        # a folder means "look for a checkpoint file in it".
        try:
            path = await get_model_uri(self.settings, wellknown_filenames=CHECKPOINT_NAMES)
        except InvalidModelURI as error:
            raise RuntimeError(f"{error}: no such file. {HOW_TO_GET_WEIGHTS}") from None
        if os.path.isfile(path):
            model = timm.create_model(ARCHITECTURE, pretrained=False)
            timm.models.load_checkpoint(model, path)
            _warn_if_random(path)
            return model
        try:
            return _pretrained_from_hub()
        except Exception as error:  # offline, no cache: huggingface_hub raises many kinds
            hub_error = error
        if _random_weights_allowed(extra):
            logger.warning(
                "!!! TinyViT is running with RANDOM weights: predictions are "
                "meaningless. %s",
                HOW_TO_GET_WEIGHTS,
            )
            torch.manual_seed(0)
            return timm.create_model(ARCHITECTURE, pretrained=False)
        raise RuntimeError(
            f"No TinyViT weights: no checkpoint at parameters.uri ({path}) and the hub failed "
            f"({type(hub_error).__name__}: {hub_error}). {HOW_TO_GET_WEIGHTS}"
        )


def _pretrained_from_hub() -> torch.nn.Module:
    """timm's pretrained weights: the hub cache, and the hub itself when reachable."""
    import socket

    import huggingface_hub.constants

    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        # Offline: read the local cache only, instead of retrying for a minute.
        huggingface_hub.constants.HF_HUB_OFFLINE = True
    return timm.create_model(ARCHITECTURE, pretrained=True)


def _random_weights_allowed(extra: dict) -> bool:
    flag = str(extra.get("allow_random_weights", os.environ.get(RANDOM_WEIGHTS_ENV, "")))
    return flag.lower() in {"1", "true", "yes"}


def _warn_if_random(path: str) -> None:
    if not path.endswith(".safetensors"):
        return
    from safetensors import safe_open

    with safe_open(path, framework="pt") as checkpoint:
        metadata = checkpoint.metadata() or {}
    if metadata.get("source") == "random":
        logger.warning(
            "!!! %s holds RANDOM weights (written for offline practice): "
            "predictions are meaningless. %s",
            path,
            HOW_TO_GET_WEIGHTS,
        )


def decode_images(request: InferenceRequest) -> list:
    """The request's images as a list of ``[H, W, 3]`` uint8 arrays, or BadRequest."""
    request_input = _find_input(request)
    if request_input.datatype == "UINT8":
        images = list(_decode_pixels(request_input))
    elif request_input.datatype == "BYTES":
        images = _decode_encoded(request_input)
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


def _find_input(request: InferenceRequest) -> RequestInput:
    for request_input in request.inputs:
        if request_input.name == INPUT_NAME:
            return request_input
    names = [request_input.name for request_input in request.inputs]
    raise BadRequest(f"No input named '{INPUT_NAME}' (got {names}). Name the image input '{INPUT_NAME}'.")


def _decode_pixels(request_input: RequestInput) -> np.ndarray:
    shape = list(request_input.shape)
    if len(shape) != 4 or shape[3] != 3:
        raise BadRequest(
            f"UINT8 input shape {shape} is not [N, H, W, 3]. Add the leading batch "
            "axis (image[None] for one image) and send RGB images."
        )
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
        raise BadRequest(
            f"Shape {shape} needs {n * height * width * 3} values but the request holds "
            f"{count}. If adaptive batching is on, arrays of different image sizes "
            "cannot share a batch: send encoded images (BYTES, content_type 'base64') "
            "or resize all images to one size."
        )
    if values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255:
        raise BadRequest("UINT8 data must be integers in 0..255.")
    return values.astype(np.uint8).reshape(n, height, width, 3)


def _decode_encoded(request_input: RequestInput) -> list:
    shape = list(request_input.shape)
    files = Base64Codec.decode_input(request_input)
    # [N, 1] is what MLServer's Base64Codec and StringCodec produce.
    if shape not in ([len(files)], [len(files), 1]):
        raise BadRequest(
            f"BYTES input shape {shape} does not match the {len(files)} files sent: "
            "use shape [N] (or [N, 1]) with one PNG/JPEG file per element."
        )
    return [_open_image(index, data) for index, data in enumerate(files)]


def _open_image(index: int, data: bytes) -> np.ndarray:
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
