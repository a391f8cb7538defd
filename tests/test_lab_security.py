"""JupyterLab as `make lab` starts it: loopback only, and a token is required."""

import pytest
import requests

from tests.helpers.jupyterlab import make_lab_command, running_lab
from tests.helpers.network import is_loopback, listening_addresses

pytestmark = pytest.mark.slow


@pytest.fixture
def lab():
    with running_lab() as (process, port, url):
        yield process, port, url


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
