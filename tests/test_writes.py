"""The lab writes nothing outside the repository and the temp dirs.

With HOME an empty folder and TMPDIR a fresh one: JupyterLab as `make lab` starts it
(a kernel started and a workspace saved through its API, as the browser does), and a
notebook run end to end by a Jupyter kernel (MLServer started and stopped, requests,
matplotlib). Afterwards HOME is still empty, nothing new is in /tmp, and git sees no
change in the repository (what the lab keeps goes to ignored folders: .lab/, weights/).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from tests.helpers.lab import REPO
from tests.helpers.jupyterlab import execute_in_kernel, lab_environment, running_lab

pytestmark = pytest.mark.slow
NOTEBOOK = REPO / "notebooks" / "solutions" / "02_inference_requests.ipynb"
# IPython history, matplotlib's font cache and config: what a first cell writes.
PLOTTING_CELL = "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([0, 1]);\nplt.show()"


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout


def files_under(folder: Path) -> list:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def use_the_lab_in_the_browser_way(env: dict) -> None:
    """A kernel runs a plotting cell, and the workspace is saved."""
    with running_lab(env=env) as (process, port, url):
        api, token = f"http://127.0.0.1:{port}", url.split("token=")[1]
        kernel = requests.post(f"{api}/api/kernels", params={"token": token}, json={"name": "python3"},
                               timeout=30).json()
        channels = f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}"
        reply = execute_in_kernel(channels, PLOTTING_CELL)
        assert reply["status"] == "ok", reply
        saved = requests.put(f"{api}/lab/api/workspaces/default", params={"token": token}, timeout=10,
                             json={"data": {}, "metadata": {"id": "default"}})
        assert saved.status_code == 204
        requests.delete(f"{api}/api/kernels/{kernel['id']}", params={"token": token}, timeout=30)


def test_the_lab_writes_only_in_the_repo_and_temp_dirs(tmp_path):
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    # A student's shell: no XDG_ folders, and not CI (ONNX Runtime 1.32 writes a device id for its
    # telemetry to ~/.cache/Microsoft unless it sees CI=true or ORT_DISABLE_TELEMETRY).
    env = {key: value for key, value in os.environ.items() if not key.startswith("XDG_") and key != "CI"}
    env.update(lab_environment(), HOME=str(home), TMPDIR=str(scratch), LAB_QUICK="1")
    system_tmp = Path(tempfile.gettempdir())
    tmp_before, repo_before = set(os.listdir(system_tmp)), git_status()

    use_the_lab_in_the_browser_way(env)
    run = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "nbconvert", "--to", "notebook",
                          "--execute", str(NOTEBOOK), "--output-dir", str(scratch / "executed")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]

    assert files_under(home) == [], "written to HOME"
    assert set(os.listdir(system_tmp)) - tmp_before == set(), "written to the system temp dir, not TMPDIR"
    assert git_status() == repo_before, "the repository changed"
