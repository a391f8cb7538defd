"""Find TinyViT's weights, honestly, also offline.

Order: (1) the checkpoint file at ``parameters.uri`` in ``model-settings.json`` (a
``.safetensors`` or ``.pth``; a folder means "a checkpoint file in it"); (2) timm's
pretrained weights from the Hugging Face hub (its local cache when offline); (3) random
weights, **only** when allowed (``TINYVIT_ALLOW_RANDOM_WEIGHTS=1`` or
``parameters.extra.allow_random_weights``), with a loud warning. Otherwise loading fails
with a message that says how to get the weights.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from mlserver.errors import InvalidModelURI
from mlserver.settings import ModelSettings
from mlserver.utils import get_model_uri

ARCHITECTURE = "tiny_vit_5m_224.dist_in22k"
HUB_ID = f"timm/{ARCHITECTURE}"
CHECKPOINT_NAMES = ["tinyvit.safetensors", "model.safetensors", "tinyvit.pth", "pytorch_model.bin"]
RANDOM_WEIGHTS_ENV = "TINYVIT_ALLOW_RANDOM_WEIGHTS"
HOW_TO_GET_WEIGHTS = (
    "In the lab, run `make weights` once while online (it is `python -m labkit weights download`): "
    "it replaces weights/tinyvit.safetensors, which every service folder of the lab finds as "
    "tinyvit.safetensors, so no model-settings.json needs to change. Outside the lab, point "
    "`parameters.uri` at a checkpoint file, or (offline, for practice only) allow random "
    f"weights with {RANDOM_WEIGHTS_ENV}=1 or `parameters.extra.allow_random_weights`."
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("mlserver.tinyvit")


async def load_tinyvit(settings: ModelSettings) -> torch.nn.Module:
    """TinyViT in eval mode with the weights the model settings point at (see above)."""
    # timm and torch are imported where the model is built, not at the top: the main MLServer
    # process imports this module too (it finds the service class there) and never runs the model.
    import timm
    import torch

    extra = extra_parameters(settings)
    # MLServer sets parameters.uri to the model folder when it is missing.
    try:
        path = await get_model_uri(settings, wellknown_filenames=CHECKPOINT_NAMES)
    except InvalidModelURI as error:
        raise RuntimeError(f"{error}: no such file. {HOW_TO_GET_WEIGHTS}") from None
    if os.path.isfile(path):
        model = timm.create_model(ARCHITECTURE, pretrained=False)
        timm.models.load_checkpoint(model, path)
        warn_if_random(path)
        return model.eval()
    try:
        return pretrained_from_hub().eval()
    except Exception as error:  # offline, no cache: huggingface_hub raises many kinds
        hub_error = error
    if random_weights_allowed(extra):
        logger.warning("!!! TinyViT is running with RANDOM weights: predictions are meaningless. %s",
                       HOW_TO_GET_WEIGHTS)
        torch.manual_seed(0)
        return timm.create_model(ARCHITECTURE, pretrained=False).eval()
    raise RuntimeError(
        f"No TinyViT weights: no checkpoint at parameters.uri ({path}) and the hub failed "
        f"({type(hub_error).__name__}: {hub_error}). {HOW_TO_GET_WEIGHTS}"
    )


def extra_parameters(settings: ModelSettings) -> dict:
    """``parameters.extra`` of the model settings, or ``{}``."""
    parameters = settings.parameters
    return dict(parameters.extra or {}) if parameters else {}


def pretrained_from_hub() -> torch.nn.Module:
    """timm's pretrained weights: the hub cache, and the hub itself when reachable."""
    import huggingface_hub.constants
    import timm

    if not hub_reachable():
        # Offline: read the local cache only, instead of retrying for a minute.
        huggingface_hub.constants.HF_HUB_OFFLINE = True
    return timm.create_model(ARCHITECTURE, pretrained=True)


def hub_reachable(timeout: float = 3) -> bool:
    """Whether the model hub (``HF_ENDPOINT``, by default huggingface.co) takes a connection."""
    from urllib.parse import urlsplit

    import huggingface_hub.constants

    endpoint = urlsplit(huggingface_hub.constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def random_weights_allowed(extra: dict) -> bool:
    flag = str(extra.get("allow_random_weights", os.environ.get(RANDOM_WEIGHTS_ENV, "")))
    return flag.lower() in {"1", "true", "yes"}


def warn_if_random(path: str) -> None:
    """Warn when ``path`` is the lab's random practice checkpoint (marked in its metadata)."""
    if not path.endswith(".safetensors"):
        return
    from safetensors import safe_open

    with safe_open(path, framework="pt") as checkpoint:
        metadata = checkpoint.metadata() or {}
    if metadata.get("source") == "random":
        logger.warning("!!! %s holds RANDOM weights (written for offline practice): "
                       "predictions are meaningless. %s", path, HOW_TO_GET_WEIGHTS)
