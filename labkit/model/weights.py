"""Where the TinyViT weights come from, and its ImageNet-22k labels.

The lab serves ``tiny_vit_5m_224.dist_in22k``. Its checkpoint lives in
``weights/tinyvit.safetensors`` (what ``tinyvit/model-settings.json`` points at):

* ``python -m labkit weights download`` saves the pretrained weights there
  (needs the Hugging Face hub once; afterwards the lab runs offline);
* ``python -m labkit weights random`` writes a deterministic random checkpoint,
  marked as random in its metadata, for offline practice and for the tests;
* ``python -m labkit weights prepare [--allow-random]`` keeps a pretrained
  checkpoint, else tries to download one, else (only if allowed) writes the
  random one with a loud warning.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import shutil
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from safetensors import safe_open

from labkit.paths import DEFAULT_CHECKPOINT, REPO_ROOT, PathLike  # noqa: F401 (REPO_ROOT: re-exported)

if TYPE_CHECKING:
    import torch

# torch and timm are imported where a model is built, not here: the checks and the lab's
# helpers read labels and checkpoints in a kernel that may never run a model (0.6 GB less).
ARCHITECTURE = "tiny_vit_5m_224.dist_in22k"
RANDOM_BANNER = (
    "RANDOM WEIGHTS: this checkpoint was written for offline practice. The "
    "service works, but its labels are meaningless. Run `make weights` while "
    "online to get the pretrained model."
)


class WeightsNotFound(RuntimeError):
    pass


def write_random_checkpoint(path: PathLike = DEFAULT_CHECKPOINT, seed: int = 0) -> Path:
    """Write a deterministic random TinyViT checkpoint marked ``source=random``."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(ARCHITECTURE, pretrained=False)
    return _save(model, path, {"source": "random", "seed": str(seed)})


def download_pretrained(path: PathLike = DEFAULT_CHECKPOINT) -> Path:
    """Save the pretrained checkpoint from the Hugging Face hub (``HF_ENDPOINT``) or its
    cache into ``path``. On failure ``path`` is left as it was, a cached copy that does not
    load is removed (the next try downloads it again), and WeightsNotFound says why."""
    import huggingface_hub.constants

    from labkit.model.service import helper

    endpoint = huggingface_hub.constants.ENDPOINT
    try:
        model = helper("model_weights").pretrained_from_hub()
    except Exception as error:  # huggingface_hub, safetensors and timm raise many kinds
        removed = _remove_cached_download()
        raise WeightsNotFound(
            f"Could not get the pretrained TinyViT from {endpoint} or the local hub cache "
            f"({type(error).__name__}: {str(error)[:300]}). {Path(path)} was not changed"
            + ("; the cached copy that did not load was removed, so the next try downloads it again."
               if removed else ".")) from error
    return _save(model, path, {"source": "pretrained", "hub_id": f"timm/{ARCHITECTURE}"})


def _remove_cached_download() -> bool:
    """Remove the hub cache's copy of the TinyViT repository if it holds a weights file."""
    import huggingface_hub.constants

    cached = Path(huggingface_hub.constants.HF_HUB_CACHE) / f"models--timm--{ARCHITECTURE}"
    if not any(cached.glob("snapshots/*/*")):
        return False
    shutil.rmtree(cached)
    return True


def prepare(path: PathLike = DEFAULT_CHECKPOINT, allow_random: bool = False) -> Path:
    """Make sure ``path`` holds a checkpoint; never replace a pretrained one."""
    path = Path(path)
    if path.is_file() and not is_random(path):
        return path
    try:
        return download_pretrained(path)
    except WeightsNotFound as error:
        if path.is_file():
            print(f"Keeping the random checkpoint in {path}. {error}")
            return path
        if not allow_random:
            raise WeightsNotFound(
                f"{error} Run `make weights` where the Hugging Face hub is reachable, or "
                "`python -m labkit weights random` to practise with random weights."
            ) from error
    print("!" * 72 + f"\n{RANDOM_BANNER}\n" + "!" * 72, file=sys.stderr)
    return write_random_checkpoint(path)


def is_random(path: PathLike = DEFAULT_CHECKPOINT) -> bool:
    """True when ``path`` is a checkpoint written by :func:`write_random_checkpoint`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return False
    with safe_open(str(path), framework="numpy") as checkpoint:  # the metadata only: no torch
        return (checkpoint.metadata() or {}).get("source") == "random"


def load_model(path: PathLike = DEFAULT_CHECKPOINT) -> torch.nn.Module:
    """The in-process TinyViT (eval mode) with the weights in ``path``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFound(f"No checkpoint at {path}: run `make weights` (or `python -m labkit weights prepare`).")
    import timm

    model = timm.create_model(ARCHITECTURE, pretrained=False)
    timm.models.load_checkpoint(model, str(path))
    return model.eval()


def preprocess(model: torch.nn.Module) -> Callable:
    """timm's evaluation transform for ``model`` (PIL image -> tensor)."""
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config({}, model=model))


@lru_cache(maxsize=1)
def labels() -> tuple:
    """The 21841 ImageNet-22k class names, from timm's bundled metadata (the files that
    ``timm.data.ImageNetInfo("imagenet-22k").index_to_description`` reads, read without
    importing timm, which imports torch)."""
    # timm is a requirement and a package: its spec and its folder are there
    timm_folder = importlib.util.find_spec("timm").submodule_search_locations[0]  # type: ignore[union-attr, index]
    info = Path(timm_folder) / "data" / "_info"
    synsets = (info / "imagenet22k_synsets.txt").read_text(encoding="utf-8").splitlines()
    with open(info / "imagenet_synset_to_lemma.txt", encoding="utf-8", newline="") as handle:
        lemmas = dict(csv.reader(handle, delimiter="\t"))
    return tuple(lemmas[synset] for synset in synsets)


def warn_if_random(path: PathLike = DEFAULT_CHECKPOINT) -> bool:
    """Warn (visibly, in a notebook) when the checkpoint is random; return whether it is."""
    random = is_random(path)
    if random:
        warnings.warn(RANDOM_BANNER, stacklevel=2)
    return random


def _save(model: torch.nn.Module, path: PathLike, metadata: dict) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    temporary = path.with_suffix(".tmp")
    save_file(state, str(temporary), metadata=metadata)
    # safetensors writes 0600; on a shared hub every user's servers read this one file.
    temporary.chmod(0o644)
    temporary.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["download", "random", "prepare", "status"])
    parser.add_argument("--path", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--allow-random", action="store_true",
                        help="prepare: fall back to random weights when offline")
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            path = download_pretrained(args.path)
        elif args.command == "random":
            path = write_random_checkpoint(args.path)
        elif args.command == "prepare":
            path = prepare(args.path, allow_random=args.allow_random)
        else:
            path = args.path
            if not path.is_file():
                raise WeightsNotFound(f"No checkpoint at {path}.")
    except WeightsNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    kind = "RANDOM" if is_random(path) else "pretrained"
    print(f"{path}: {kind} weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
