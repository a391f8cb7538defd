"""Small display helpers for the notebooks: the weights banner, diagrams, files."""

from __future__ import annotations

from pathlib import Path

from IPython.display import HTML, SVG, display

from labkit.model import weights
from labkit.paths import REPO_ROOT, PathLike

IMAGES = REPO_ROOT / "imgs"


def weights_banner(path: PathLike = weights.DEFAULT_CHECKPOINT) -> bool:
    """Show which TinyViT weights the lab uses; a red banner when they are random."""
    if not Path(path).is_file():
        raise weights.WeightsNotFound(f"No checkpoint at {path}: run `make weights` in a terminal.")
    random = weights.is_random(path)
    if random:
        display(HTML('<div style="background:#b00020;color:white;padding:8px 12px;'
                     f'border-radius:4px;font-weight:bold">{weights.RANDOM_BANNER}</div>'))
    print(f"TinyViT weights: {'RANDOM (offline practice)' if random else 'pretrained'}")
    return random


def diagram(name: str) -> None:
    """Display ``imgs/<name>.svg``."""
    display(SVG(filename=str(IMAGES / f"{name}.svg")))


def file(relative_path: str) -> None:
    """Print a file of the repository with its path as a heading."""
    path = REPO_ROOT / relative_path
    print(f"--- {relative_path} ---\n{path.read_text().rstrip()}")
