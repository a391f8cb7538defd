"""A reusable MLServer runtime for timm image classifiers, configured by settings alone.

    {
      "name": "tinyvit-timm",
      "implementation": "labkit.runtimes.timm.TimmClassifier",
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
(``labkit.model.reference.best_labels``). Answers are ``labels`` (BYTES ``[N, top_k]``) and ``scores``
(FP32 ``[N, top_k]``), best first.
"""

from typing import cast

from mlserver.errors import MLServerError
from mlserver.utils import get_model_uri

from labkit.runtimes.base import LabRuntime, RuntimeOptions

LABEL_SETS = {21841: "imagenet-22k", 1000: "imagenet-1k"}


class TimmClassifier(LabRuntime):
    """Any timm image classifier, served by configuration alone (see the module docstring).

    Args:
        settings: MLServer's model settings: ``parameters.uri`` the checkpoint (relative to
            the model's folder), ``parameters.extra`` the timm ``model``, ``top_k`` (default 5)
            and ``torch_threads``.

    Raises:
        MLServerError: from ``load()``, without ``parameters.extra.model`` or ``parameters.uri``.
    """

    async def load(self) -> bool:
        # Imported where the model runs: MLServer's main process imports this module only to find
        # the class (as the service's file, tinyvit/serve-model.py, explains).
        import timm
        import torch
        from timm.data import ImageNetInfo, create_transform, resolve_data_config

        options = RuntimeOptions.from_settings(self.settings)
        if options.model is None:
            raise MLServerError("TimmClassifier needs parameters.extra.model (a timm model name)")
        if not (self.settings.parameters and self.settings.parameters.uri):
            # Without it MLServer's get_model_uri says only FileNotFoundError.
            raise MLServerError("TimmClassifier needs parameters.uri (the checkpoint's file, relative to the model's "
                                "folder)")
        self.options = options if options.top_k is not None else RuntimeOptions(options.model, 5, options.threads)
        torch.set_num_threads(options.threads)
        self.model = timm.create_model(options.model, pretrained=False)
        timm.models.load_checkpoint(self.model, await get_model_uri(self.settings))
        self.model.eval()
        self.transform = create_transform(**resolve_data_config({}, model=self.model))
        # An int that timm's classifiers set (torch types a module's attributes as Tensor | Module).
        num_classes = cast(int, self.model.num_classes)
        info = ImageNetInfo(LABEL_SETS.get(num_classes, "imagenet-1k"))
        self.labels = [info.index_to_description(i) for i in range(num_classes)]
        self.register_metrics()
        return True
