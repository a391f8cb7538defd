"""Package the TinyViT service as a container image (notebook 06).

``build_context("tinyvit")`` prepares a folder for ``mlserver build`` without
touching the student's model folder: a copy of the folder, the weights copied in
(``parameters.uri`` points outside the folder, and an image must carry its
weights), ``settings.json`` bound to ``0.0.0.0`` (inside a container only the
container's own interfaces exist; publish the port on the host's loopback with
``docker run -p 127.0.0.1:8080:8080``), and the Dockerfile that
``mlserver dockerfile`` generates.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from labkit.serving.server import resolve_model_dir
from labkit.serving.commands import executable
from labkit.paths import DEFAULT_CHECKPOINT, PathLike

WEIGHTS_NAME = "tinyvit.safetensors"


def build_context(model_dir: PathLike = "tinyvit", target: PathLike | None = None,
                  checkpoint: PathLike = DEFAULT_CHECKPOINT, dockerfile: bool = True) -> Path:
    """A ready-to-build copy of ``model_dir`` in ``target`` (a new temp folder by default);
    ``dockerfile=False`` leaves running ``mlserver dockerfile`` to the student."""
    source = resolve_model_dir(model_dir)
    target = Path(target) if target else Path(tempfile.mkdtemp(prefix="tinyvit-image-")) / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".*", "Dockerfile"))
    shutil.copy(checkpoint, target / WEIGHTS_NAME)
    model_settings = json.loads((target / "model-settings.json").read_text())
    model_settings.setdefault("parameters", {})["uri"] = f"./{WEIGHTS_NAME}"
    (target / "model-settings.json").write_text(json.dumps(model_settings, indent=2) + "\n")
    settings = json.loads((target / "settings.json").read_text())
    settings["host"] = "0.0.0.0"
    (target / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    if dockerfile:
        subprocess.run([executable("mlserver"), "dockerfile", str(target)], check=True, capture_output=True, text=True)
    return target


def dockerfile_stages(dockerfile: str) -> list:
    """[(base image, stage name or None)] for every FROM line."""
    stages = []
    for match in re.finditer(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.MULTILINE | re.IGNORECASE):
        stages.append((match.group(1), match.group(2)))
    return stages


def docker_available() -> bool:
    """True when a Docker daemon answers (``docker info``), not just the client."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False
