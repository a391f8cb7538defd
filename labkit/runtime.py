"""A reusable MLServer runtime for timm image classifiers, configured by settings alone.

    {
      "name": "tinyvit-timm",
      "implementation": "labkit.runtime.TimmClassifier",
      "parameters": {
        "uri": "../../weights/tinyvit.safetensors",
        "extra": {"model": "tiny_vit_5m_224.dist_in22k", "top_k": 5}
      }
    }

No Python file in the model folder: ``parameters.extra.model`` names any timm
architecture, ``parameters.uri`` its checkpoint, ``top_k`` how many labels to
return. Requests follow the lab's TinyViT contract (input ``payload``: UINT8
``[N, H, W, 3]`` or encoded images as BYTES ``[N]``), decoded and checked by the
same ``decode_images`` as the TinyViT service (``tinyvit/image_batch.py``); answers are ``labels``
(BYTES ``[N, top_k]``) and ``scores`` (FP32 ``[N, top_k]``), best first.
"""

import importlib.util
import os
import sys

import numpy as np
import timm
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config

from .paths import REPO_ROOT

LABEL_SETS = {21841: "imagenet-22k", 1000: "imagenet-1k"}


def _image_batch_module():
    """tinyvit/image_batch.py: the service's request decoding and checks (one copy of them)."""
    if "image_batch" not in sys.modules:
        spec = importlib.util.spec_from_file_location("image_batch", REPO_ROOT / "tinyvit" / "image_batch.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["image_batch"] = module
    return sys.modules["image_batch"]


decode_images = _image_batch_module().decode_images


class TimmClassifier(MLModel):
    async def load(self) -> bool:
        extra = dict(self.settings.parameters.extra or {}) if self.settings.parameters else {}
        if "model" not in extra:
            raise MLServerError("TimmClassifier needs parameters.extra.model (a timm model name)")
        torch.set_num_threads(int(extra.get("torch_threads", len(os.sched_getaffinity(0)))))
        self.top_k = int(extra.get("top_k", 5))
        self.model = timm.create_model(extra["model"], pretrained=False)
        timm.models.load_checkpoint(self.model, await get_model_uri(self.settings))
        self.model.eval()
        self.transform = create_transform(**resolve_data_config({}, model=self.model))
        info = ImageNetInfo(LABEL_SETS.get(self.model.num_classes, "imagenet-1k"))
        self.labels = np.array([info.index_to_description(i) for i in range(self.model.num_classes)], dtype=object)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = decode_images(payload)
        batch = torch.stack([self.transform(Image.fromarray(image)) for image in images])
        with torch.inference_mode():
            probabilities = self.model(batch).softmax(dim=-1).numpy()
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, : self.top_k]
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output("labels", self.labels[top]),
            NumpyCodec.encode_output("scores", np.take_along_axis(probabilities, top, axis=1)),
        ])


def save_hf_artifact(target, checkpoint=None) -> "Path":
    """Save TinyViT in the Hugging Face hub's timm format (``config.json`` +
    weights) into ``target``, for HuggingFaceRuntime / transformers' pipeline.

    transformers passes ``num_classes`` itself, so it is removed from ``model_args``
    (otherwise: "got multiple values for keyword argument 'num_classes'")."""
    import json
    from pathlib import Path

    from . import weights

    target = Path(target)
    model = weights.load_model(checkpoint or weights.DEFAULT_CHECKPOINT)
    timm.models.save_for_hf(model, str(target))
    config = json.loads((target / "config.json").read_text())
    config.get("model_args", {}).pop("num_classes", None)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    return target


HF_ENVIRONMENT = REPO_ROOT / ".venv-hf"


def hf_model_folder(target, optimum_model: bool = False) -> "Path":
    """A model folder served by MLServer's HuggingFaceRuntime from a local TinyViT
    artifact (no hub download): the course text's runtime example, made concrete."""
    import json
    from pathlib import Path

    target = Path(target)
    artifact = save_hf_artifact(target / "artifact")
    settings = {
        "name": "tinyvit-hf",
        "implementation": "mlserver_huggingface.HuggingFaceRuntime",
        "parameters": {"extra": {"task": "image-classification", "pretrained_model": str(artifact.resolve()),
                                 "framework": "pt", "optimum_model": optimum_model}},
    }
    (target / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    (target / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 0}) + "\n")
    return target
