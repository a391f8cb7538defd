"""Servers started from real Jupyter kernels (jupyter_client + ipykernel, as JupyterLab
runs them): a kernel SIGKILLed mid-load leaves no MLServer behind and its ports free
for the restarted kernel, and the other kernel's server runs on; two kernels run servers side
by side without colliding."""

import json
import os
import signal

import pytest
import requests
from jupyter_client.manager import KernelManager

from labkit.measure import metrics
from labkit.serving import processes
from labkit.serving.processes import group_alive, port_is_free, wait_until
from tests.helpers.lab import REPO, engine_folder

pytestmark = pytest.mark.slow


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    """Start kernels like JupyterLab does (connection files in a temp runtime dir); all
    are shut down at the end, also when the test fails."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    started = []

    def start() -> KernelManager:
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(cwd=str(REPO))
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        manager.lab_client = client
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.lab_client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=False)


def run(manager: KernelManager, code: str, timeout: float = 240) -> str:
    """Execute ``code`` in the kernel; return what it printed, fail with its traceback."""
    printed = []

    def collect(message):
        if message["header"]["msg_type"] == "stream":
            printed.append(message["content"]["text"])
        elif message["header"]["msg_type"] == "error":
            printed.append("\n".join(message["content"]["traceback"]))

    reply = manager.lab_client.execute_interactive(code, timeout=timeout, output_hook=collect)
    assert reply["content"]["status"] == "ok", "".join(printed)
    return "".join(printed)


def start_server_code(folder, ports: dict = None) -> str:
    ports = ports or {}
    return (f"from labkit.serving.server import ModelServer\n"
            f"server = ModelServer({str(folder)!r}, **{ports!r}).start(progress=False)\n"
            f"import json; print(json.dumps({{'pid': server.process.pid, 'ports': server.ports,\n"
            f"                                 'run_dir': str(server.run_dir)}}))\n")


def started_server(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_two_kernels_side_by_side_and_one_killed_mid_load(kernels, checkpoint, tmp_path):
    # One pair of kernels for both stories. The server's lifecycle is what is tested, not the
    # PyTorch service: the engine runtime (no torch) starts in about half the time.
    left, right = kernels(), kernels()
    folder = engine_folder(tmp_path, checkpoint)
    # Default ports, as the notebooks use them: the second server must move to free ones.
    servers = [started_server(run(kernel, start_server_code(folder))) for kernel in (left, right)]
    assert set(servers[0]["ports"].values()).isdisjoint(servers[1]["ports"].values())
    for kernel in (left, right):
        output = run(kernel, "from labkit.client import infer, pixels_request, load_image\n"
                             "print(infer(server.infer_url, pixels_request([load_image()])).shape)\n")
        assert "(1, 21841)" in output
    # Re-running the start cell after an edit replaces this kernel's server; the other
    # kernel's server of the same folder keeps running.
    output = run(left, start_server_code(folder))
    assert "Stopping the server this kernel already runs for tinyvit/" in output
    assert wait_until(lambda: not group_alive(servers[0]["pid"]), timeout=30), "the old server still runs"
    assert group_alive(servers[1]["pid"])
    first = servers[0] = started_server(output)

    # The left kernel is SIGKILLed while its server is under load: its server goes with it,
    # the right kernel's stays, and the restarted kernel gets the same ports again.
    run(left, "import threading\nfrom labkit.measure.loadgen import run_load\n"
              "threading.Thread(target=run_load, args=(server.infer_url,), daemon=True,\n"
              "                 kwargs={'concurrency': 4, 'duration': 300, 'progress': False}).start()\n")
    metrics_url = f"http://127.0.0.1:{first['ports']['metrics_port']}/metrics"
    assert wait_until(lambda: metrics.total(metrics.scrape(metrics_url), "model_infer_request_success_total") >= 3,
                      timeout=60), "the load never reached the server"
    os.kill(left.provisioner.process.pid, signal.SIGKILL)
    assert wait_until(lambda: not group_alive(first["pid"]), timeout=30), "MLServer outlived its kernel"
    assert wait_until(lambda: all(port_is_free(port) for port in first["ports"].values()), timeout=10)
    assert group_alive(servers[1]["pid"]), "killing one kernel stopped the other kernel's server"

    left.restart_kernel(now=True)
    left.lab_client.wait_for_ready(timeout=60)
    second = servers[0] = started_server(run(left, start_server_code(folder, first["ports"])))
    assert second["ports"] == first["ports"], "the restarted kernel's server did not get the same ports"
    assert not (processes.pid_dir() / f"{first['pid']}.json").exists(), "stale pid file left behind"
    assert not os.path.exists(first["run_dir"]), "the dead kernel's run folder was left in the temp dir"
    answer = requests.get(f"http://127.0.0.1:{second['ports']['http_port']}/v2/models/tinyvit/ready", timeout=5)
    assert answer.status_code == 200
    for kernel, started in zip((left, right), servers):
        run(kernel, "server.stop()")
        assert not group_alive(started["pid"])
