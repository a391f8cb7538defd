"""Model folders that students write their own services into.

An exercise folder sits next to the notebook (``top5/``). The student writes
``serve-model.py``; this module writes the rest and never touches that file:

* ``model-settings.json`` (only when missing, so the student's edits stay),
* ``settings.json`` (only when missing),
* ``tinyvit_service.py``: a copy of the lab's ``tinyvit/serve-model.py`` so the
  student's class can extend ``TinyViTModel`` and reuse ``decode_images``
  (refreshed each time: it is the lab's file, not the student's).
"""

import json
import os
import shutil
from pathlib import Path

from .weights import DEFAULT_CHECKPOINT, REPO_ROOT

BASE_SERVICE = REPO_ROOT / "tinyvit" / "serve-model.py"


def prepare_service_folder(folder, name: str, implementation: str, checkpoint=DEFAULT_CHECKPOINT) -> Path:
    """Create (or complete) an exercise model folder; return its path."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(BASE_SERVICE, folder / "tinyvit_service.py")
    uri = os.path.relpath(Path(checkpoint).resolve(), folder)
    _write_if_missing(folder / "model-settings.json", {
        "name": name,
        "implementation": implementation,
        "parameters": {"uri": uri},
    })
    _write_if_missing(folder / "settings.json", {"host": "127.0.0.1", "debug": False, "parallel_workers": 1})
    return folder


def _write_if_missing(path: Path, content: dict) -> None:
    if not path.exists():
        path.write_text(json.dumps(content, indent=2) + "\n")
