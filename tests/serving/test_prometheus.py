"""A real Prometheus scrapes a real lab server on loopback; PromQL through its HTTP API."""

import pytest

from labkit.measure import metrics
from labkit.serving import prometheus
from labkit.client import infer, infer_grpc, pixels_request
from tests.helpers.lab import skip_unless_ci
from tests.helpers.network import is_loopback, listening_addresses

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def needs_prometheus():
    if not prometheus.available():
        skip_unless_ci("no `prometheus` binary: as root, tools/system-deps.sh prometheus installs it")


def test_prometheus_scrapes_the_lab_server_and_answers_promql(server, cat):
    # The server is shared with other tests: compare with its counters before these requests.
    before = metrics.scrape(server.metrics_url)
    successes = metrics.total(before, "model_infer_request_success_total", "tinyvit") + 3
    batches = metrics.total(before, "tinyvit_batch_size_count", "tinyvit") + 3
    # Over both protocols: MLServer counts a gRPC request under version="None" and a REST one
    # under version="", two series of one counter, which a query must add up.
    for _ in range(2):
        infer(server.infer_url, pixels_request([cat]))
    infer_grpc(server.grpc_address, server.name, pixels_request([cat]))
    with prometheus.Prometheus(server.metrics_url) as running:
        assert all(is_loopback(host) for host, _ in listening_addresses(running.process.pid))
        result = running.wait_for(f'sum(model_infer_request_success_total{{model="tinyvit"}}) >= {successes}')
        assert len(result) == 1 and float(result[0]["value"][1]) == successes, running.log[-2000:]
        batch = running.wait_for(f'sum(tinyvit_batch_size_count{{model_name="tinyvit"}}) >= {batches}')
        assert float(batch[0]["value"][1]) == batches
        with pytest.raises(ValueError, match="failed"):
            running.query("rate(")
    assert running.process is None
