"""MLServer's Hugging Face runtime, as the course text configures it, made to load TinyViT
from a local folder. It runs in its own environment (``make hf-runtime``: ``.venv-hf``, torch
2.8.0: optimum 1.x imports ``torch.onnx.symbolic_opset14._attention_scale``, which torch 2.9
moved) and is imported there by ``implementation``.

Why this module exists (measured 2026-12-03 with the pins of ``tools/lab.mk``):

* ``mlserver-huggingface`` 1.7.1 (and 1.7.2rc1) imports ``transformers.pipelines.Conversation``,
  which transformers removed in 4.42; transformers reads a timm ``config.json`` (TimmWrapper)
  only from 4.48. No transformers release does both. :class:`HuggingFaceRuntime` here is the
  stock runtime, imported after giving transformers a stand-in for that class (no
  conversational pipeline exists any more, so nothing is ever an instance of it).
* With ``optimum_model: true`` optimum exports a timm model only from a hub id
  (``timm.create_model("hf_hub:...")``), which a local folder is not; and it reads
  ``config.json`` as a plain configuration with two default labels (``KeyError: 2`` in the
  pipeline). ``python -m labkit.runtimes.huggingface <artifact> <target>`` exports the
  ONNX model once and writes the label names beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import transformers.pipelines

if not hasattr(transformers.pipelines, "Conversation"):
    class Conversation:  # stand-in for the class transformers 4.42 removed
        pass

    transformers.pipelines.Conversation = Conversation

from mlserver_huggingface import HuggingFaceRuntime  # noqa: E402  (after the stand-in)

__all__ = ["HuggingFaceRuntime", "export_for_optimum"]


def export_for_optimum(artifact: Path, target: Path) -> Path:
    """``target``: the artifact as ONNX (``model.onnx``, what optimum's ONNX Runtime pipeline
    loads without exporting) with its ``config.json`` and the ImageNet-22k label names."""
    import timm
    import torch
    from optimum.exporters.onnx import onnx_export_from_model
    from transformers import AutoConfig

    torch.set_num_threads(1)
    config = json.loads((artifact / "config.json").read_text())
    model = timm.create_model(config["architecture"], pretrained=False, num_classes=config["num_classes"],
                              **config.get("model_args", {}))
    model.load_state_dict(torch.load(artifact / "pytorch_model.bin", map_location="cpu"))
    model.eval()
    target.mkdir(parents=True, exist_ok=True)
    onnx_export_from_model(model, target, task="image-classification", library_name="timm", opset=17,
                           do_validation=False)
    names = AutoConfig.from_pretrained(artifact).id2label  # what transformers' TimmWrapper derives
    config["id2label"] = {str(index): name for index, name in names.items()}
    config["label2id"] = {name: int(index) for index, name in config["id2label"].items()}
    (target / "config.json").write_text(json.dumps(config, indent=2))
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1:2] == ["-h"]:
        sys.exit("usage: python -m labkit.runtimes.huggingface <artifact folder> <target folder>")
    print(export_for_optimum(Path(sys.argv[1]), Path(sys.argv[2])))
