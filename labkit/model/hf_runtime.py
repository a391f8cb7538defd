"""MLServer's Hugging Face runtime of the course text, tried for real (notebook 04): a local
TinyViT artifact in the hub's timm format and a model folder that serves it. The runtime
needs its own environment (``make hf-runtime``: ``.venv-hf``)."""

from __future__ import annotations

import json
from pathlib import Path

import timm

from labkit.model import weights
from labkit.paths import REPO_ROOT, PathLike


def save_hf_artifact(target: PathLike, checkpoint: PathLike | None = None) -> Path:
    """Save TinyViT in the Hugging Face hub's timm format (``config.json`` +
    weights) into ``target``, for HuggingFaceRuntime / transformers' pipeline.

    transformers passes ``num_classes`` itself, so it is removed from ``model_args``
    (otherwise: "got multiple values for keyword argument 'num_classes'")."""
    target = Path(target)
    model = weights.load_model(checkpoint or weights.DEFAULT_CHECKPOINT)
    timm.models.save_for_hf(model, str(target))
    config = json.loads((target / "config.json").read_text())
    config.get("model_args", {}).pop("num_classes", None)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    return target


HF_ENVIRONMENT = REPO_ROOT / ".venv-hf"


def hf_model_folder(target: PathLike, optimum_model: bool = False) -> Path:
    """A model folder served by MLServer's HuggingFaceRuntime from a local TinyViT
    artifact (no hub download): the course text's runtime example, made concrete."""
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
