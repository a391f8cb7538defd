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
HF_PYTHON = HF_ENVIRONMENT / "bin" / "python"
# The stock runtime, imported after a stand-in for a class transformers removed
# (labkit/runtimes/huggingface.py says why); it runs in .venv-hf, where labkit is installed.
HF_IMPLEMENTATION = "labkit.runtimes.huggingface.HuggingFaceRuntime"


def hf_model_folder(target: PathLike, optimum_model: bool = False, name: str = "tinyvit-hf") -> Path:
    """A model folder served by MLServer's HuggingFaceRuntime from a local TinyViT artifact
    (no hub download): the course text's runtime example, made concrete. With
    ``optimum_model`` the artifact is exported to ONNX first, in ``.venv-hf`` (optimum
    exports a timm model itself only from a hub id)."""
    import subprocess

    target = Path(target)
    artifact = save_hf_artifact(target / "artifact")
    if optimum_model:
        onnx = target / "artifact-onnx"
        export = subprocess.run([str(HF_PYTHON), "-m", "labkit.runtimes.huggingface", str(artifact), str(onnx)],
                                capture_output=True, text=True, cwd=REPO_ROOT)
        if export.returncode != 0:
            raise RuntimeError(f"the ONNX export for Optimum failed in {HF_ENVIRONMENT.name}:\n{export.stderr[-2000:]}")
        artifact = onnx
    settings = {
        "name": name,
        "implementation": HF_IMPLEMENTATION,
        "parameters": {"extra": {"task": "image-classification", "pretrained_model": str(artifact.resolve()),
                                 "framework": "pt", "optimum_model": optimum_model}},
    }
    (target / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    (target / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 0}) + "\n")
    return target


def hf_request(files: list[bytes]) -> dict:
    """The REST body HuggingFaceRuntime's image-classification pipeline takes: the encoded
    images as base64 BYTES, decoded into PIL images (content type ``pillow_image``)."""
    import base64

    return {"inputs": [{"name": "inputs", "shape": [len(files)], "datatype": "BYTES",
                        "data": [base64.b64encode(data).decode() for data in files],
                        "parameters": {"content_type": "pillow_image"}}]}


def hf_top_labels(answer: dict) -> list[list[tuple[str, float]]]:
    """(label, score) pairs per image from the runtime's answer (one JSON list per image,
    content type ``hg_jsonlist``)."""
    rows = [json.loads(item) for item in answer["outputs"][0]["data"]]
    rows = [rows] if rows and isinstance(rows[0], dict) else rows
    return [[(entry["label"], float(entry["score"])) for entry in row] for row in rows]
