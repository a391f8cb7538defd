"""The tests' random TinyViT checkpoint, kept between runs with its reference export.

Every test session needs a checkpoint whose bytes it knows (seed 0, never the pretrained
weights) and the checks' reference export of it, which costs a torch export and its
comparison with PyTorch: 12-20 s on 2 cores. Both depend only on the checkpoint's bytes, so
they live in ``.lab/test-weights/`` (inside the repository, like the rest of the lab's state)
and a run after the first, or `make test`'s second stream, finds them instead of making them
again. ``python -m tests.helpers.weights`` makes them ahead (``make test-setup`` does).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.lab import REPO

FOLDER = REPO / ".lab" / "test-weights"


def random_checkpoint() -> Path:
    """The seed-0 random checkpoint of the installed timm and torch, written once."""
    import timm
    import torch

    from labkit.model import weights
    from labkit.model.export import _exclusive

    # timm's or torch's initialisation may change with their versions: a new file then.
    path = FOLDER / f"tinyvit-random-0-timm{timm.__version__}-torch{torch.__version__}.safetensors"
    with _exclusive(path):  # make test's two streams start at once
        if not _is_random_seed_0(path):
            weights.write_random_checkpoint(path, seed=0)
    return path


def _is_random_seed_0(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as opened:
            metadata = opened.metadata() or {}
    except Exception:  # absent or cut short: write it again
        return False
    return metadata.get("source") == "random" and metadata.get("seed") == "0"


def main() -> int:
    from labkit.model.reference import reference_onnx

    checkpoint = random_checkpoint()
    print(f"The tests' checkpoint: {checkpoint}\nIts reference export: {reference_onnx(checkpoint, quiet=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
