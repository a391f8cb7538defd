"""The service folder a student reads: plain `mlserver start` works without labkit, the
helper modules shadow nothing, and a student's folder is created without touching their files."""

import ast
from importlib.machinery import PathFinder
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from labkit.serving.processes import free_port, wait_until
from labkit.workspace import HELPERS, SERVER_SETTINGS, lab_service_copy, service_folder
from tests.helpers.lab import REPO

SERVICE = REPO / "tinyvit"


def test_the_service_and_its_helpers_import_nothing_from_labkit():
    for path in SERVICE.glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        modules += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in modules if name.split(".")[0] == "labkit"], path.name


def test_helper_modules_shadow_no_installed_module():
    for path in SERVICE.glob("*.py"):
        if path.stem != "serve-model":
            # PathFinder looks at sys.path only (not at modules this test run imported already).
            assert PathFinder.find_spec(path.stem) is None, f"{path.name} shadows an installed module"
    assert sorted(HELPERS) == sorted(path.name for path in SERVICE.glob("*.py") if path.stem != "serve-model")


def test_serve_model_is_short_enough_to_read():
    lines = (SERVICE / "serve-model.py").read_text().splitlines()
    assert len(lines) <= 80
    tree = ast.parse("\n".join(lines))
    model = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "TinyViTModel")
    assert {node.name for node in model.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))} == {
        "load", "predict", "classify", "unload"}


@pytest.mark.slow
def test_plain_mlserver_start_serves_the_folder(tmp_path, checkpoint, cat, reference):
    folder = tmp_path / "tinyvit"
    shutil.copytree(SERVICE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    model_settings = json.loads((folder / "model-settings.json").read_text())
    model_settings["parameters"]["uri"] = str(checkpoint)
    (folder / "model-settings.json").write_text(json.dumps(model_settings))
    http_port = free_port()
    settings = {"host": "127.0.0.1", "debug": False, "parallel_workers": 1,
                "http_port": http_port, "grpc_port": free_port(), "metrics_port": free_port()}
    (folder / "settings.json").write_text(json.dumps(settings))
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLSERVER_")}
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "mlserver"), "start", str(folder)],
                               cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    try:
        url = f"http://127.0.0.1:{http_port}/v2/models/tinyvit"
        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                return requests.get(f"{url}/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        assert wait_until(ready, 180, interval=0.5)
        request = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", cat[None])])
        answer = requests.post(f"{url}/infer", data=request.model_dump_json(), timeout=60,
                               headers={"Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        probabilities = NumpyCodec.decode_output(InferenceResponse.model_validate(answer.json()).outputs[0])
        np.testing.assert_allclose(probabilities, reference.probabilities([cat]), rtol=1e-3, atol=1e-6)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        log.close()


def test_service_folder_never_touches_the_students_files(tmp_path, checkpoint):
    folder = service_folder(tmp_path / "mine", checkpoint=checkpoint)
    assert (folder / "tinyvit.safetensors").resolve() == checkpoint.resolve()
    assert all((folder / name).read_bytes() == (SERVICE / name).read_bytes() for name in HELPERS)
    (folder / "serve-model.py").write_text("# mine\n")
    (folder / "model_weights.py").write_text("# I edited the helper\n")
    service_folder(folder, checkpoint=checkpoint)
    assert (folder / "serve-model.py").read_text() == "# mine\n"
    assert (folder / "model_weights.py").read_text() == "# I edited the helper\n"
    assert not (folder / "model-settings.json").exists() and not (folder / "settings.json").exists()


def test_a_new_folder_takes_the_labs_server_settings_and_nothing_of_another_notebook(tmp_path, checkpoint):
    # 03's folder: the server settings are not its lesson; its model settings are, so no
    # starting point may answer them (an earlier version copied 01's model-settings.json).
    first = service_folder(tmp_path / "my-tinyvit", checkpoint=checkpoint)
    (first / "model-settings.json").write_text('{"name": "my-tinyvit"}')
    second = service_folder(tmp_path / "top5", checkpoint=checkpoint, lab_settings=True)
    assert json.loads((second / "settings.json").read_text()) == SERVER_SETTINGS
    assert not (second / "model-settings.json").exists() and not (second / "serve-model.py").exists()
    (second / "settings.json").write_text('{"host": "127.0.0.1", "parallel_workers": 2}')
    service_folder(second, checkpoint=checkpoint, lab_settings=True)
    assert "parallel_workers\": 2" in (second / "settings.json").read_text()


def test_lab_service_copy_holds_the_whole_service(tmp_path, checkpoint):
    folder = lab_service_copy(tmp_path / "confidence", checkpoint=checkpoint)
    assert (folder / "serve-model.py").read_bytes() == (SERVICE / "serve-model.py").read_bytes()


def test_a_new_service_folder_is_private_and_an_existing_one_keeps_its_mode(tmp_path, checkpoint):
    # On a shared JupyterHub host the student's home may be readable by others (Debian's
    # useradd makes it 0755): the service the student writes stays theirs.
    folder = service_folder(tmp_path / "homework" / "my-tinyvit", checkpoint=checkpoint)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "homework").stat().st_mode & 0o077, "only the service folder itself is made private"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    service_folder(shared, checkpoint=checkpoint)
    assert shared.stat().st_mode & 0o777 == 0o755, "a folder the student made keeps the mode they chose"


def test_the_folder_server_settings_are_the_ones_notebook_01_teaches():
    source = (REPO / "notebooks" / "source" / "01_first_service.py").read_text()
    cell = source.split("%%writefile my-tinyvit/settings.json\n", 1)[1].split("\n\n", 1)[0]
    assert json.loads(cell) == SERVER_SETTINGS
