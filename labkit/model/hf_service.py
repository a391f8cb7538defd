"""MLServer's Hugging Face runtime of the course text, tried for real (notebook 04): a local
TinyViT artifact in the hub's timm format and a model folder that serves it. The runtime
needs its own environment (``make hf-runtime``: ``.venv-hf``)."""

from __future__ import annotations

import json
from pathlib import Path

from labkit.model import weights
from labkit.paths import REPO_ROOT, PathLike


def save_hf_artifact(target: PathLike, checkpoint: PathLike | None = None) -> Path:
    """Save TinyViT in the Hugging Face hub's timm format (``config.json`` +
    weights) into ``target``, for HuggingFaceRuntime / transformers' pipeline.

    transformers passes ``num_classes`` itself, so it is removed from ``model_args``
    (otherwise: "got multiple values for keyword argument 'num_classes'")."""
    import timm  # here, not at the top: the checks read this module's names without torch

    target = Path(target)
    model = weights.load_model(checkpoint or weights.DEFAULT_CHECKPOINT)
    timm.models.save_for_hf(model, str(target))
    config = json.loads((target / "config.json").read_text())
    config.get("model_args", {}).pop("num_classes", None)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    return target


HF_ENVIRONMENT = REPO_ROOT / ".venv-hf"
HF_PYTHON = HF_ENVIRONMENT / "bin" / "python"
# Written by `make test` instead of .venv-hf when the disk had no room for it (tools/lab.mk).
HF_SKIPPED = REPO_ROOT / ".lab" / "hf-runtime-skipped"
# The stock runtime, imported after a stand-in for a class transformers removed
# (labkit/runtimes/huggingface.py says why); it runs in .venv-hf, where labkit is installed.
HF_IMPLEMENTATION = "labkit.runtimes.huggingface.HuggingFaceRuntime"
# Optimum's ONNX export, kept inside the model folder; a dot folder, so run copies leave it out.
OPTIMUM_EXPORT = ".optimum"


def artifact_folder(folder: PathLike, checkpoint: PathLike | None = None) -> Path:
    """Create the model folder of notebook 04's Hugging Face exercise: TinyViT in the hub's timm
    format (``config.json`` + weights) and the server settings of notebook 01; the student
    writes ``model-settings.json``. A model-settings.json without ``uri`` or ``pretrained_model``
    serves this folder: MLServer sets ``parameters.uri`` to the folder of model-settings.json
    when it has none (``mlserver/repository/load.py``), and the runtime hands that uri to
    transformers' pipeline, which loads the model from it, no hub involved."""
    folder = Path(folder).resolve()
    # Private when the lab creates it (a shared hub's home folders may be readable by all).
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    checkpoint = Path(checkpoint or weights.DEFAULT_CHECKPOINT)
    saved = folder / "pytorch_model.bin"
    if not (saved.is_file() and (folder / "config.json").is_file()
            and saved.stat().st_mtime >= checkpoint.stat().st_mtime):
        save_hf_artifact(folder, checkpoint)  # config.json and the weights: nothing the student writes
    if not (folder / "settings.json").exists():
        (folder / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 0}) + "\n")
    return folder


def optimum_export(folder: PathLike) -> Path:
    """TinyViT of ``folder`` (an :func:`artifact_folder`) exported to ONNX for Optimum, in
    ``.venv-hf``, into ``folder/.optimum`` (``model.onnx``, ``config.json`` with the label
    names); exported again only when the weights are newer. Optimum exports a timm model
    itself only from a hub id, so ``optimum_model: true`` with a local folder needs this."""
    import subprocess

    folder = Path(folder).resolve()
    target = folder / OPTIMUM_EXPORT
    weights_file = folder / "pytorch_model.bin"
    if (target / "model.onnx").is_file() and (target / "model.onnx").stat().st_mtime >= weights_file.stat().st_mtime:
        return target
    export = subprocess.run([str(HF_PYTHON), "-m", "labkit.runtimes.huggingface", str(folder), str(target)],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    if export.returncode != 0:
        raise RuntimeError(f"the ONNX export for Optimum failed in {HF_ENVIRONMENT.name}:\n{export.stderr[-2000:]}")
    return target


def optimum_options(folder: PathLike) -> dict:
    """What the lab changes to serve ``folder`` with Optimum (``ModelServer(folder, extra=...)``):
    ``optimum_model`` true and the model from its ONNX export."""
    return {"optimum_model": True, "pretrained_model": str(optimum_export(folder))}


def hf_model_folder(target: PathLike, optimum_model: bool = False, name: str = "tinyvit-hf") -> Path:
    """A whole model folder for MLServer's HuggingFaceRuntime (what notebook 04's exercise
    writes, for the tests): :func:`artifact_folder` with its model-settings.json; with
    ``optimum_model`` the settings name the ONNX export of :func:`optimum_export`."""
    target = artifact_folder(target)
    extra = {"task": "image-classification", "optimum_model": False}  # as the exercise's solution
    if optimum_model:
        extra.update(optimum_options(target))
    settings = {"name": name, "implementation": HF_IMPLEMENTATION, "parameters": {"extra": extra}}
    (target / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
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
