"""A real Prometheus scrapes a real lab server on loopback; PromQL through its HTTP API."""

import pytest

from labkit import prometheus
from labkit.client import infer, pixels_request
from tests.conftest import skip_unless_ci, start_server
from tests.test_server import is_loopback, listening_addresses

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def needs_prometheus():
    if not prometheus.available():
        skip_unless_ci("no `prometheus` binary: as root, tools/system-deps.sh prometheus installs it")


def test_prometheus_scrapes_the_lab_server_and_answers_promql(checkpoint, cat):
    with start_server(checkpoint, parallel_workers=1) as server:
        for _ in range(3):
            infer(server.infer_url, pixels_request([cat]))
        with prometheus.Prometheus(server.metrics_url) as running:
            assert all(is_loopback(host) for host, _ in listening_addresses(running.process.pid))
            result = running.wait_for('model_infer_request_success_total{model="tinyvit"} >= 3')
            assert len(result) == 1 and float(result[0]["value"][1]) == 3
            batch = running.wait_for('tinyvit_batch_size_count{model_name="tinyvit"}')
            assert float(batch[0]["value"][1]) == 3
            with pytest.raises(ValueError, match="failed"):
                running.query("rate(")
        assert running.process is None
