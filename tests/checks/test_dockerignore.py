"""A build folder's ignore file read as Docker reads it (labkit/checks/dockerignore.py)."""

import pytest
from mlserver.cli.constants import Dockerignore

from labkit.checks.dockerignore import ignore_file, ignored

NEEDED = ["tinyvit.safetensors", "requirements.txt", "model-settings.json", "settings.json", "serve-model.py",
          "model_weights.py"]


@pytest.mark.parametrize("lines, left_out", [
    ("*.safetensors\n__pycache__\n", {"tinyvit.safetensors": "*.safetensors"}),
    ("requirements.txt\n", {"requirements.txt": "requirements.txt"}),
    ("/requirements.txt\n", {"requirements.txt": "/requirements.txt"}),
    ("./model-settings.json\n", {"model-settings.json": "./model-settings.json"}),
    ("*\n", {path: "*" for path in NEEDED}),
    ("*\n!*.py\n!*.json\n!requirements.txt\n", {"tinyvit.safetensors": "*"}),
    ("**/*.py\n", {"serve-model.py": "**/*.py", "model_weights.py": "**/*.py"}),
    ("*.py\n!serve-model.py\n", {"model_weights.py": "*.py"}),
    ("# *.safetensors\n\n   \n", {}),
    ("tinyvit.safe?ensors\n", {"tinyvit.safetensors": "tinyvit.safe?ensors"}),
    ("[st]*.json\n", {"settings.json": "[st]*.json"}),
    ("[!m]*.json\n", {"settings.json": "[!m]*.json"}),
    ("weights/\n*.pyc\n.git\n", {}),
    ("models/*.safetensors\n", {}),  # * stays within one folder: the weights are at the top
])
def test_patterns_leave_out_what_docker_leaves_out(tmp_path, lines, left_out):
    (tmp_path / ".dockerignore").write_text(lines)
    assert ignored(tmp_path, NEEDED) == left_out


def test_a_folder_pattern_leaves_out_the_files_under_it(tmp_path):
    (tmp_path / ".dockerignore").write_text("weights\n!weights/keep.txt\n")
    assert ignored(tmp_path, ["weights/tinyvit.safetensors", "weights/keep.txt"]) == {
        "weights/tinyvit.safetensors": "weights"}


def test_mlservers_own_ignore_file_leaves_out_nothing_the_image_needs(tmp_path):
    # `mlserver dockerfile -i` writes it as Dockerfile.dockerignore, which BuildKit reads first.
    (tmp_path / "Dockerfile.dockerignore").write_text(Dockerignore)
    (tmp_path / ".dockerignore").write_text("*\n")
    assert ignore_file(tmp_path) == tmp_path / "Dockerfile.dockerignore"
    assert ignored(tmp_path, NEEDED) == {}


def test_no_ignore_file_leaves_out_nothing(tmp_path):
    assert ignore_file(tmp_path) is None and ignored(tmp_path, NEEDED) == {}
