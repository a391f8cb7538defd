"""The reference the checks compare answers with, and one ranking of the best labels.

* :func:`reference_model`: what the checks use, from the student's kernel. TinyViT exported to
  ONNX and run by ONNX Runtime, with timm's preprocessing in NumPy (:mod:`labkit.model.pixels`),
  in a short-lived child process (:mod:`labkit.model.reference_child`, about 0.5 s a question):
  the kernel holds neither torch (0.6 GB) nor ONNX Runtime and its session (0.27 GB after a few
  batches), only the answers it was given, by image. The export runs once per checkpoint, in a
  child process (``python -m labkit reference``; ``make weights`` runs it), and is written only
  after it answers like the PyTorch service (largest logit difference ``REFERENCE_LIMIT``;
  measured 1.2e-06) with the same top 5 for every image.
* :func:`in_process_model`: the lab's service loaded here with torch (the tests, and notebook
  04, whose lesson compares engines with PyTorch).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from labkit.paths import DEFAULT_CHECKPOINT, PathLike

# Largest logit difference from PyTorch that the reference export may have (the export's own
# default is 1e-3, for serving; the checks compare probabilities with rtol 1e-3).
REFERENCE_LIMIT = 1e-4


def best_labels(probabilities: np.ndarray, k: int, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(labels ``[N, k]``, scores ``[N, k]``) of each row, best first (ties: lower index)."""
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return np.asarray(names, dtype=object)[top], np.take_along_axis(probabilities, top, axis=1)


class Reference:
    """``probabilities`` of images; ``best_labels`` from them."""

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def best_labels(self, images: Sequence[np.ndarray], k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(labels ``[N, k]``, scores ``[N, k]``), best first."""
        from labkit.model.weights import labels

        return best_labels(self.probabilities(images), k, labels())


class InProcessModel(Reference):
    """The lab's service loaded here on a checkpoint: same preprocessing, same forward (torch)."""

    def __init__(self, path: PathLike = DEFAULT_CHECKPOINT):
        from labkit.model.service import loaded_service

        self.service = loaded_service(path)
        self.model, self.transform = self.service.model, self.service.transform

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, 21841]`` for a list of uint8 ``[H, W, 3]`` images."""
        return self.service.classify(list(images))


@lru_cache(maxsize=2)
def in_process_model(path: PathLike = DEFAULT_CHECKPOINT) -> InProcessModel:
    """A cached :class:`InProcessModel` for ``path``."""
    return InProcessModel(path)


class OnnxReference(Reference):
    """The verified ONNX export of a checkpoint in ONNX Runtime, preprocessing in NumPy."""

    def __init__(self, onnx_path: PathLike):
        from labkit.model.export import onnx_runtime_forward, verified_record
        from labkit.model.pixels import check_config

        self.path = Path(onnx_path)
        self.config = verified_record(self.path)["data_config"]
        check_config(self.config)
        self.forward = onnx_runtime_forward(self.path)

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, 21841]`` float32 for a list of uint8 ``[H, W, 3]`` images (softmax as torch's)."""
        from labkit.model.pixels import probabilities

        return probabilities(self.forward, images, self.config)


class ChildReference(Reference):
    """:class:`OnnxReference`'s answers, each asked of a short-lived child process; the rows
    already answered are kept here, by image (a check asks again for images it sent before).
    With ``in_process``, ONNX Runtime answers in this process instead: for a process that runs
    the checks itself (an isolated check's own child, the tests), which is short-lived or no
    student's kernel, a child per question would only add half a second to each."""

    KEPT_ROWS = 64  # 87 KB each

    def __init__(self, onnx_path: PathLike, in_process: bool = False):
        self.path = Path(onnx_path)
        self._rows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._here = OnnxReference(self.path) if in_process else None

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, 21841]`` float32 for a list of uint8 ``[H, W, 3]`` images."""
        images = [np.asarray(image) for image in images]
        for index, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {index} is {image.dtype} {list(image.shape)}; the reference "
                                 "takes [H, W, 3] uint8 images")
        keys = [_image_key(image) for image in images]
        new = {key: image for key, image in zip(keys, images) if key not in self._rows}
        if new:
            asked = list(new.values())
            answers = (self._here.probabilities(asked).astype(np.float32) if self._here is not None
                       else _answers_of_child(self.path, asked))
            self._rows.update(zip(new, answers))
        answer = np.stack([self._rows[key] for key in keys])
        for key in keys:
            self._rows.move_to_end(key)
        while len(self._rows) > max(self.KEPT_ROWS, len(keys)):
            self._rows.popitem(last=False)
        return answer


def _image_key(image: np.ndarray) -> bytes:
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.digest()


def _answers_of_child(onnx_path: Path, images: list[np.ndarray]) -> np.ndarray:
    """Ask ``python -m labkit.model.reference_child`` (images in as .npz, probabilities out as .npy)."""
    sent = io.BytesIO()
    np.savez(sent, *images)
    done = subprocess.run([sys.executable, "-m", "labkit.model.reference_child", str(onnx_path)],
                          input=sent.getvalue(), capture_output=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"The checks' reference model failed in its process:\n"
                           f"{done.stderr.decode(errors='replace')}")
    answers = np.load(io.BytesIO(done.stdout))
    if answers.shape[0] != len(images):
        raise RuntimeError(f"The checks' reference gave {answers.shape[0]} rows for {len(images)} images")
    return answers


def reference_model(checkpoint: PathLike = DEFAULT_CHECKPOINT) -> ChildReference:
    """The checks' reference for ``checkpoint`` (exported first if need be, in a child process);
    it answers in a child, or in this process where the checks run in it (``LAB_CHECK_IN_PROCESS``)."""
    from labkit import config

    path = Path(checkpoint).resolve()
    stat = path.stat()
    return _reference(path, stat.st_mtime_ns, stat.st_size, config.checks_in_process())


@lru_cache(maxsize=4)
def _reference(checkpoint: Path, mtime_ns: int, size: int, in_process: bool) -> ChildReference:
    return ChildReference(reference_onnx(checkpoint), in_process=in_process)


def reference_onnx(checkpoint: PathLike = DEFAULT_CHECKPOINT, quiet: bool = False) -> Path:
    """The verified reference export of ``checkpoint``: next to it (``make weights`` writes it
    there), or in the user's cache where that folder is not writable (a shared hub)."""
    from labkit.model.export import sha256

    checkpoint = Path(checkpoint).resolve()
    digest = sha256(checkpoint)  # once: 21 MB read, and every place below compares with it
    name = f"reference-{digest[:16]}.onnx"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlserver-lab"
    # Next to the checkpoint first; the lab's weights/ folder also answers for a copy of its
    # checkpoint elsewhere (the same bytes: a test's, a grader's).
    places = [checkpoint.parent / name, DEFAULT_CHECKPOINT.parent / name, cache / name]
    for place in places:
        if _verified_for(place, digest):
            return place
    target = places[0] if os.access(checkpoint.parent, os.W_OK) else places[-1]
    if not quiet:
        print("(Once for these weights: exporting the checks' reference model, about a minute.)", flush=True)
    done = subprocess.run([sys.executable, "-m", "labkit", "export", "--checkpoint", str(checkpoint),
                           "--out", str(target), "--max-abs-diff", str(REFERENCE_LIMIT)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not _verified_for(target, digest):
        raise RuntimeError(f"The checks' reference model could not be exported to {target}:\n"
                           f"{done.stdout}{done.stderr}")
    return target


def _verified_for(onnx_path: Path, checkpoint_sha256: str) -> bool:
    """Whether ``onnx_path`` is a verified reference export of the checkpoint with that digest."""
    from labkit.model.export import NotVerified, verified_record

    try:
        record = verified_record(onnx_path)
    except NotVerified:
        return False
    return (record.get("checkpoint_sha256") == checkpoint_sha256
            and record["comparison"]["max_abs_diff"] <= REFERENCE_LIMIT and record["comparison"]["top5_identical"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit reference",
                                     description="Export the checks' reference model for a checkpoint "
                                                 "(verified against PyTorch first), unless it exists.")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    args = parser.parse_args(argv)
    try:
        path = reference_onnx(args.checkpoint, quiet=True)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"The checks' reference model: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
