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
same code as the TinyViT service: this class extends its ``TinyViTModel`` (request decoding
and checks, preprocessing and forward in ``classify()``), and the top-k is the reference's
(``labkit.reference.top_k``). Answers are ``labels`` (BYTES ``[N, top_k]``) and ``scores``
(FP32 ``[N, top_k]``), best first.
"""


from typing import Sequence

import numpy as np
import timm
import torch
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri
from timm.data import ImageNetInfo, create_transform, resolve_data_config

from .reference import top_k
from .service import helper, service_module

LABEL_SETS = {21841: "imagenet-22k", 1000: "imagenet-1k"}


class TimmClassifier(service_module().TinyViTModel):
    async def load(self) -> bool:
        extra = dict(self.settings.parameters.extra or {}) if self.settings.parameters else {}
        if "model" not in extra:
            raise MLServerError("TimmClassifier needs parameters.extra.model (a timm model name)")
        torch.set_num_threads(helper("cpu_threads").torch_threads(extra))
        self.top_k = int(extra.get("top_k", 5))
        self.model = timm.create_model(extra["model"], pretrained=False)
        timm.models.load_checkpoint(self.model, await get_model_uri(self.settings))
        self.model.eval()
        self.transform = create_transform(**resolve_data_config({}, model=self.model))
        info = ImageNetInfo(LABEL_SETS.get(self.model.num_classes, "imagenet-1k"))
        self.labels = [info.index_to_description(i) for i in range(self.model.num_classes)]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        probabilities = self.classify(helper("image_batch").decode_images(payload))
        return top_k_response(self.name, probabilities, self.top_k, self.labels)


def top_k_response(model_name: str, probabilities: np.ndarray, k: int, names: Sequence[str]) -> InferenceResponse:
    """The runtimes' compact answer: ``labels`` (BYTES ``[N, k]``) and ``scores`` (FP32 ``[N, k]``).

    Labels go out as UTF-8 bytes: MLServer 1.7.1's gRPC converter fails on ``str`` elements
    ("expected bytes, str found", a 500 for every gRPC caller) while REST takes either."""
    labels, scores = top_k(probabilities, k, names)
    labels = np.vectorize(str.encode, otypes=[object])(labels)
    return InferenceResponse(model_name=model_name, outputs=[
        NumpyCodec.encode_output("labels", labels),
        NumpyCodec.encode_output("scores", scores),
    ])
