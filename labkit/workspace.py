"""Service folders that students write their own services into, next to the notebook.

``service_folder("my-service")`` creates the folder with what is not the student's to
write, and never touches ``model-settings.json``, ``settings.json`` or ``serve-model.py``:

* the lab service's helper modules from ``tinyvit/`` (``image_batch.py``: decode and
  check a request; ``model_weights.py``: find the checkpoint; ``cpu_threads.py``;
  ``freed_memory.py``),
  copied when missing, or refreshed when they are still an unedited lab copy;
* ``tinyvit.safetensors``, a link to the lab's checkpoint: MLServer's default
  ``parameters.uri`` is the model folder, and ``model_weights`` looks for this file
  name there, so the student's ``model-settings.json`` needs no ``uri``.

A folder the lab creates is private to its user (0700). ``lab_settings`` puts the server
settings notebook 01 teaches (``SERVER_SETTINGS``) into a folder that lacks a
``settings.json``, for an exercise whose lesson is elsewhere (notebook 03): a folder never
starts from another notebook's files, so it grades the same whether or not that notebook was
run first, and no starting point answers an exercise.
``lab_service_copy`` is the lab's whole service folder, for an exercise that extends it;
``tuning_folder`` is that folder with the verified ONNX export linked in too (``tinyvit.onnx``),
for notebook 05's challenge, where the student picks the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from labkit.paths import DEFAULT_CHECKPOINT, REPO_ROOT, PathLike

LAB_SERVICE = REPO_ROOT / "tinyvit"
HELPERS = ("image_batch.py", "model_weights.py", "cpu_threads.py", "freed_memory.py")
CHECKPOINT_LINK = "tinyvit.safetensors"
PREVIOUS_COPIES = ".lab-helpers"  # digests of the helper versions the lab wrote here
# The server settings of notebook 01's exercise: loopback only, debug off, and the model in
# MLServer's own process (no worker process that imports torch a second time).
SERVER_SETTINGS = {"host": "127.0.0.1", "debug": False, "parallel_workers": 0}


def service_folder(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
                   lab_settings: bool = False) -> Path:
    """Create (or complete) a student's service folder, for a service the student writes.

    Args:
        folder: the folder, relative to the notebook (``"my-tinyvit"``, ``"top5"``).
        checkpoint: the weights, linked into the folder as ``tinyvit.safetensors``.
        lab_settings: also write ``SERVER_SETTINGS`` as ``settings.json`` (when the exercise is
            not about it).

    Returns:
        The folder's absolute path. It holds the checkpoint link and the lab's helper modules
        (image decoding, weights loading); the student's files are never overwritten.
    """
    folder = runtime_folder(folder, checkpoint, lab_settings)
    for name in HELPERS:
        _copy_helper(LAB_SERVICE / name, folder / name)
    return folder


def runtime_folder(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
                   lab_settings: bool = False) -> Path:
    """Create a model folder for a ready-made runtime (notebook 04).

    Args:
        folder: the folder, relative to the notebook (``"top3"``).
        checkpoint: the weights, linked into the folder as ``tinyvit.safetensors``.
        lab_settings: also write ``SERVER_SETTINGS`` as ``settings.json`` (notebook 01's server
            settings), unless the folder has one.

    Returns:
        The folder's absolute path: private to the user, with the checkpoint link (and the
        settings) in it; the student writes ``model-settings.json``.
    """
    folder = Path(folder).resolve()
    # Private when the lab creates it: on a shared JupyterHub host a home folder may be
    # readable by every user (Debian's useradd makes it 0755), the service must not be.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    link_checkpoint(folder, checkpoint)
    if lab_settings and not (folder / "settings.json").exists():
        (folder / "settings.json").write_text(json.dumps(SERVER_SETTINGS, indent=2) + "\n")
    return folder


def link_checkpoint(folder: Path, checkpoint: PathLike = DEFAULT_CHECKPOINT) -> None:
    """``folder/tinyvit.safetensors`` -> ``checkpoint`` (absolute, so copies of the folder
    that keep links still find it)."""
    _link(folder / CHECKPOINT_LINK, Path(checkpoint).resolve())


def _link(link: Path, target: Path) -> None:
    """``link`` -> ``target``, unless it already points there or is a real file (one the student
    put there is theirs)."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.exists() and not link.is_symlink():
        return
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def lab_service_copy(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
                     with_settings: bool = False) -> Path:
    """Copy the lab's own service into ``folder``, to configure or extend (notebooks 05, 07).

    Args:
        folder: the folder, relative to the notebook (``"scaled"``, ``"confidence"``).
        checkpoint: the weights, linked into the folder as ``tinyvit.safetensors``.
        with_settings: also copy the lab's two JSON files.

    Returns:
        The folder's absolute path, with ``serve-model.py`` and its helpers; a file the
        student changed is kept as they wrote it.
    """
    folder = service_folder(folder, checkpoint)
    names = ["serve-model.py"] + (["model-settings.json", "settings.json"] if with_settings else [])
    for name in names:
        _copy_helper(LAB_SERVICE / name, folder / name)
    return folder


ONNX_LINK = "tinyvit.onnx"


def tuning_folder(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
                  onnx: PathLike | None = None) -> Path:
    """The lab's whole service folder (:func:`lab_service_copy`) with ``tinyvit.onnx`` and its
    verification record linked in, so that any of the lab's engines can serve from it with
    ``"uri": "tinyvit.onnx"``.

    Args:
        folder: the folder, relative to the notebook (``"tuned"``).
        checkpoint: the weights, linked into the folder as ``tinyvit.safetensors``.
        onnx: a verified export of ``checkpoint`` (default: the checks' reference export of it,
            which ``make weights`` made; made here, once, where it is missing).

    Returns:
        The folder's absolute path.
    """
    from labkit.model.export import record_path
    from labkit.model.reference import reference_onnx

    onnx = Path(onnx).resolve() if onnx else reference_onnx(checkpoint)
    folder = lab_service_copy(folder, checkpoint)
    _link(folder / ONNX_LINK, onnx)
    _link(folder / f"{ONNX_LINK}.json", record_path(onnx))
    return folder


def _copy_helper(source: Path, target: Path) -> None:
    """Copy a lab file unless the student changed the copy the lab made earlier."""
    record_file = target.parent / PREVIOUS_COPIES
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    fresh = source.read_bytes()
    if target.exists():
        current = hashlib.sha256(target.read_bytes()).hexdigest()
        if current == hashlib.sha256(fresh).hexdigest():
            return
        if current != record.get(target.name):
            print(f"Keeping your edited {target.name} (the lab's version is in {source}).")
            return
    target.write_bytes(fresh)
    record[target.name] = hashlib.sha256(fresh).hexdigest()
    record_file.write_text(json.dumps(record, indent=2) + "\n")
