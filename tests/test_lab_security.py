"""JupyterLab as `make lab` starts it: loopback only, and a token is required."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from labkit.server import _group_alive, _stop_group, free_port
from tests.conftest import REPO
from tests.test_server import is_loopback, listening_addresses

pytestmark = pytest.mark.slow


def make_lab_command(port: int) -> list:
    """The `jupyter lab` line of the Makefile's `lab` target, for this port."""
    done = subprocess.run(["make", "-n", "lab", f"LAB_PORT={port}"], cwd=REPO, capture_output=True, text=True)
    line = next(line for line in done.stdout.replace("\\\n", " ").splitlines() if "jupyter lab" in line)
    return line.split()


@pytest.fixture
def lab(tmp_path):
    port = free_port()
    command = make_lab_command(port)
    command[0] = str(Path(sys.executable).parent / "jupyter")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            match = re.search(rf"(http://127\.0\.0\.1:{port}/lab\?token=\w+)", line)
            url = match.group(1) if match else None
        assert url, "JupyterLab did not print its URL with a token"
        yield process, port, url
    finally:
        _stop_group(process.pid, 10, process)
        assert not _group_alive(process.pid)


def test_make_lab_binds_loopback_and_requires_the_token(lab):
    process, port, url = lab
    assert "--ip=127.0.0.1" in make_lab_command(port)
    addresses = listening_addresses(process.pid)
    assert port in {listening_port for _, listening_port in addresses}
    assert all(is_loopback(host) for host, _ in addresses), addresses
    api = f"http://127.0.0.1:{port}/api/contents"
    assert requests.get(api, timeout=10).status_code == 403
    token = url.split("token=")[1]
    answer = requests.get(api, params={"token": token}, timeout=10)
    assert answer.status_code == 200
    assert "05_scaling.ipynb" in {item["name"] for item in answer.json()["content"]}
