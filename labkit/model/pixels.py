"""timm's evaluation preprocessing of an image, in NumPy and PIL alone (no torch).

The checks' reference model (:mod:`labkit.model.reference`) runs beside the student's kernel,
which should not pay for torch (about 0.6 GB). This is the transform that the service builds
with ``timm.data.create_transform`` from the model's data config: resize the shorter side to
``floor(size / crop_pct)`` with PIL, crop the centre, scale to [0, 1], normalise. torchvision
runs the same PIL resize on a PIL image, so the pixels are equal bit for bit
(``tests/model/test_pixels.py`` compares them on the checks' images).

:func:`probabilities` is the whole classification around an exported model's forward pass:
the checks' reference, the ONNX Runtime and OpenVINO runtimes and Triton share it, and none of
them imports torch.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from PIL import Image

RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
              "nearest": Image.Resampling.NEAREST}


def check_config(config: dict) -> None:
    """ValueError for a data config this module does not reproduce (only what TinyViT uses)."""
    if config.get("crop_mode", "center") != "center" or config.get("interpolation") not in RESAMPLING:
        raise ValueError(f"timm preprocessing not reproduced here: crop_mode {config.get('crop_mode')!r}, "
                         f"interpolation {config.get('interpolation')!r}")
    height, width = config["input_size"][1:]
    if height != width:
        raise ValueError(f"a square input is expected, not {height}x{width}")


def pixels(image: np.ndarray, config: dict) -> np.ndarray:
    """``[3, S, S]`` float32 for one ``[H, W, 3]`` uint8 image, as timm's eval transform makes it."""
    check_config(config)
    size = int(config["input_size"][1])
    scale = math.floor(size / config["crop_pct"])
    picture = Image.fromarray(image)
    width, height = picture.size
    # torchvision's Resize(int): the shorter side becomes `scale`, the longer one int(scale * long / short).
    if width <= height:
        shape = (scale, int(scale * height / width))
    else:
        shape = (int(scale * width / height), scale)
    picture = picture.resize(shape, RESAMPLING[config["interpolation"]])
    left, top = (int(round((side - size) / 2.0)) for side in shape)  # torchvision's center_crop
    picture = picture.crop((left, top, left + size, top + size))
    mean = np.asarray(config["mean"], dtype=np.float32)
    std = np.asarray(config["std"], dtype=np.float32)
    scaled = np.asarray(picture, dtype=np.float32) / np.float32(255)
    return ((scaled - mean) / std).transpose(2, 0, 1)


def probabilities(forward: Callable[[np.ndarray], np.ndarray], images: Sequence[np.ndarray],
                  config: dict) -> np.ndarray:
    """``[N, 21841]`` float32 for a list of uint8 ``[H, W, 3]`` images: each preprocessed as timm's
    eval transform does (``config``, the model's data config), ``forward`` (logits of a
    ``[N, 3, S, S]`` float32 batch) on them as one batch, then the softmax, as the service takes it."""
    logits = np.asarray(forward(np.stack([pixels(image, config) for image in images])), dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
