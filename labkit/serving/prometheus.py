"""A Prometheus server on loopback that scrapes a lab server (notebook 07).

    with Prometheus(server.metrics_url) as prometheus:
        prometheus.wait_for('model_infer_request_success_total{model="tinyvit"}')
        prometheus.query('rate(model_infer_request_success_total[1m])')

It needs the ``prometheus`` binary (Debian package ``prometheus``;
``tools/system-deps.sh prometheus`` installs it as root). The configuration is
``monitoring/prometheus.yml`` with the lab server's real metrics address filled
in; data goes to a temporary folder; the web UI/API listens on 127.0.0.1 only.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import requests
import yaml

from labkit.serving.processes import die_with_parent, free_port, stop_group, wait_until
from labkit.paths import REPO_ROOT

CONFIG_TEMPLATE = REPO_ROOT / "monitoring" / "prometheus.yml"


def available() -> bool:
    return shutil.which("prometheus") is not None


class Prometheus:
    def __init__(self, metrics_url: str, scrape_interval: str = "2s"):
        parsed = urlparse(metrics_url)
        self.target = f"{parsed.hostname}:{parsed.port}"
        self.scrape_interval = scrape_interval
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.folder: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Prometheus":
        if not available():
            raise FileNotFoundError("No `prometheus` binary: install the Debian package `prometheus` "
                                    "(as root: tools/system-deps.sh prometheus).")
        self.folder = Path(tempfile.mkdtemp(prefix="mlserver-lab-prometheus-"))
        config = yaml.safe_load(CONFIG_TEMPLATE.read_text())
        # Each scrape may take the whole interval: MLServer's /metrics gathers its workers' files,
        # which takes over a second on a busy machine (Prometheus would cut it at its default).
        config["global"]["scrape_interval"] = self.scrape_interval
        config["global"]["scrape_timeout"] = self.scrape_interval
        config["scrape_configs"][0]["static_configs"] = [{"targets": [self.target]}]
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        with open(self.folder / "prometheus.log", "wb") as log:  # the child keeps its own copy
            self.process = process = subprocess.Popen(
                ["prometheus", f"--config.file={self.folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent)
        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log[-2000:]}")
            try:
                return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        if wait_until(ready, timeout, interval=0.3):
            return self
        self.stop()
        raise TimeoutError(f"prometheus not ready after {timeout} s")

    @property
    def log(self) -> str:
        path = self.folder / "prometheus.log" if self.folder else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def query(self, promql: str) -> list:
        """The result vector of an instant PromQL query (HTTP API ``/api/v1/query``)."""
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        if answer.get("status") != "success":
            raise ValueError(f"PromQL {promql!r} failed: {answer.get('error')}")
        return answer["data"]["result"]

    def wait_for(self, promql: str, timeout: float = 60) -> list:
        """Query until the result is not empty (Prometheus scrapes every few seconds)."""
        results: list[list] = []

        def found() -> bool:
            results.append(self.query(promql))
            return bool(results[-1])

        wait_until(found, timeout, interval=0.5)
        return results[-1]

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid, 10, self.process)
            self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "Prometheus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
