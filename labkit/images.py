"""The images the checks draw: new ones on every call, so that no hand-in can look them up.

A leaf of the lab (numpy, the photo, nothing heavy): the checks use it, and the ONNX export
uses a fixed draw of it to compare engines.
"""

from __future__ import annotations

import numpy as np

from labkit.client import load_image
from labkit.paths import CAT


def check_images(rng: np.random.Generator | None = None) -> list:
    """(name, image) pairs the checks use: a crop of the photo, noise, a flat colour and
    stripes, of different sizes, drawn anew on every call (``rng``: a fresh one from the
    operating system's entropy), so they are not a list a hand-in could look up. Their
    answers differ also under the random offline weights (crops of one photo do not)."""
    rng = rng or np.random.default_rng()
    photo = load_image(CAT)
    top, left = (int(value) for value in rng.integers(0, 48, 2))
    photo = photo[top:, left:][:, ::-1] if rng.integers(2) else photo[top:, left:]
    height, width = (int(value) for value in rng.integers(150, 240, 2))
    period = int(rng.integers(8, 32))
    stripes = ((np.indices((height, width)).sum(axis=0) // period) % 2 * 255).astype(np.uint8)
    colour = rng.integers(0, 256, 3)
    return [
        ("a crop of the cat photo", np.ascontiguousarray(photo)),
        ("random noise", rng.integers(0, 256, (width, height, 3), dtype=np.uint8)),
        ("a flat colour image", np.full((height, width, 3), colour, np.uint8)),
        ("black and white stripes", np.repeat(stripes[..., None], 3, axis=2)),
    ]
