"""Where the lab's files are (a leaf module: imports nothing heavy)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO_ROOT / "weights" / "tinyvit.safetensors"
IMAGES = REPO_ROOT / "imgs"
CAT = IMAGES / "cat.jpg"

# What the lab's functions take for a file or folder.
PathLike = str | os.PathLike
