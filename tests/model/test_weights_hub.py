"""The pretrained-weights path, against a stand-in for the Hugging Face hub on loopback.

This machine cannot reach huggingface.co, and most students can. The stand-in serves a
timm-format repository for ``timm/tiny_vit_5m_224.dist_in22k`` (``model.safetensors``, a
checkpoint this test writes) the way the hub answers ``huggingface_hub``'s HEAD and GET,
and ``HF_ENDPOINT`` points the client at it. Each run is a fresh process (the hub client
reads its settings at import) with its own hub cache.
"""

import hashlib
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from labkit.model import weights
from labkit.serving.processes import free_port
from tests.helpers.lab import REPO

pytestmark = pytest.mark.slow

FILE_PATH = f"/timm/{weights.ARCHITECTURE}/resolve/main/model.safetensors"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class StandInHub(ThreadingHTTPServer):
    """``mode``: "ok"; "truncated" (HEAD announces the file's size, GET sends half of it);
    "corrupt" (the right size, garbage)."""

    def __init__(self, checkpoint: bytes):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.checkpoint, self.mode, self.requests = checkpoint, "ok", []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        hub = self.server
        hub.requests.append((self.command, self.path))
        if self.path.split("?")[0] != FILE_PATH:
            self.send_error(404, "Entry not found")
            return
        data = hub.checkpoint
        etag = hashlib.sha256(data).hexdigest()
        if body and hub.mode == "truncated":  # cut short on the way (a proxy, a full disk upstream)
            data = data[: len(data) // 2]
        elif body and hub.mode == "corrupt":
            data = bytes(len(data))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The "pretrained" checkpoint the stand-in publishes: timm's format, no lab metadata."""
    torch.manual_seed(123)
    model = timm.create_model(weights.ARCHITECTURE, pretrained=False)
    path = tmp_path_factory.mktemp("published") / "model.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, str(path))
    return path


@pytest.fixture
def hub(published):
    server = StandInHub(published.read_bytes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_weights(command: list, endpoint: str, hf_home, timeout: float = 120) -> tuple:
    """``python -m labkit weights ...`` with the hub at ``endpoint``; (exit code, output, seconds)."""
    environment = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1"}
    environment.pop("HF_HUB_OFFLINE", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "labkit.model.weights", *command], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


SERVICE_LOAD = """
import logging, sys
from mlserver.settings import ModelParameters, ModelSettings
from labkit.model.service import run_coroutine, service_module
logging.basicConfig(level=logging.INFO)
service = service_module()
settings = ModelSettings(name="tinyvit", implementation=service.TinyViTModel,
                         parameters=ModelParameters(uri=sys.argv[1]))
run_coroutine(service.TinyViTModel(settings).load())
"""


def service_load_log(checkpoint) -> str:
    """What the service logs while its load() runs on ``checkpoint``."""
    done = subprocess.run([sys.executable, "-c", SERVICE_LOAD, str(checkpoint)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch thread(s)" in done.stderr, done.stderr  # the service's own log lines are there
    return done.stderr


def same_tensors(path, published) -> bool:
    mine, theirs = load_file(str(path)), load_file(str(published))
    return mine.keys() == theirs.keys() and all(torch.equal(mine[name], theirs[name]) for name in mine)


def test_download_then_offline_from_the_cache(hub, published, tmp_path):
    target = tmp_path / "tinyvit.safetensors"
    code, output, _ = run_weights(["download", "--path", str(target)], hub.endpoint, tmp_path / "hf")
    assert code == 0, output
    assert ("GET", FILE_PATH) in hub.requests
    assert not weights.is_random(target) and same_tensors(target, published)
    assert "pretrained weights" in output
    assert target.stat().st_mode & 0o777 == 0o644, "every user of a shared hub reads the checkpoint"

    # The service loads it with no random-weights warning (which a random checkpoint gets).
    assert "RANDOM weights" not in service_load_log(target)
    assert "RANDOM weights" in service_load_log(weights.write_random_checkpoint(tmp_path / "random.safetensors"))

    # The hub goes away: the next download comes from the cache, within seconds.
    hub.shutdown()
    hub.server_close()
    again = tmp_path / "again.safetensors"
    code, output, seconds = run_weights(["download", "--path", str(again)], hub.endpoint, tmp_path / "hf")
    assert code == 0, output
    assert same_tensors(again, published) and seconds < 60


@pytest.mark.parametrize("mode", ["truncated", "corrupt"])
def test_a_bad_download_is_a_clear_error_and_leaves_no_checkpoint(hub, published, tmp_path, mode):
    hub.mode = mode
    target = tmp_path / "tinyvit.safetensors"
    code, output, _ = run_weights(["download", "--path", str(target)], hub.endpoint, tmp_path / "hf")
    assert code == 1, output
    assert output.startswith("error: Could not get the pretrained TinyViT from http://127.0.0.1"), output
    assert "Traceback" not in output
    assert not target.exists() and not list(tmp_path.glob("*.tmp"))
    # Nothing bad stays in the cache: once the hub serves the file again, it downloads.
    hub.mode = "ok"
    code, output, _ = run_weights(["download", "--path", str(target)], hub.endpoint, tmp_path / "hf")
    assert code == 0, output
    assert same_tensors(target, published)


def test_an_unreachable_hub_falls_back_within_seconds(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    target = tmp_path / "tinyvit.safetensors"
    code, output, seconds = run_weights(["download", "--path", str(target)], closed, tmp_path / "hf")
    assert code == 1 and "Could not get the pretrained TinyViT" in output and not target.exists()
    code, output, seconds = run_weights(["prepare", "--allow-random", "--path", str(target)], closed, tmp_path / "hf")
    assert code == 0, output
    assert weights.is_random(target) and "RANDOM WEIGHTS" in output
    assert seconds < 30, f"the offline fallback took {seconds:.0f} s"
