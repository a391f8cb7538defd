"""labkit.measure.metrics on a real server: counters move by exactly what was sent; the custom
metric check; the live plot under load."""

import json
import re
import http.server
import threading

import nbformat
import pytest
import requests

from labkit import checks
from labkit.measure import metrics
from labkit.client import infer, pixels_request
from labkit.instructor.build import SOLUTIONS
from labkit.serving import ModelServer
from labkit.workspace import lab_service_copy
from tests.helpers.lab import FREE_PORTS, reload_with

pytestmark = pytest.mark.slow
BAD = b'{"inputs": [{"name": "payload", "shape": [8, 8, 3], "datatype": "UINT8", "data": [0]}]}'


@pytest.fixture(scope="module")
def metrics_server(batching_server):
    """One worker and adaptive batching: every metric this module reads is there."""
    return batching_server


def test_counters_move_by_exactly_what_was_sent(metrics_server, cat):
    before = metrics.scrape(metrics_server.metrics_url)
    for _ in range(3):
        infer(metrics_server.infer_url, pixels_request([cat, cat]))
    for _ in range(2):
        assert requests.post(metrics_server.infer_url, data=BAD, timeout=10).status_code == 400
    after = metrics.scrape(metrics_server.metrics_url)
    delta = metrics.delta(before, after)
    assert delta.loc["tinyvit", "successes"] == 3
    assert delta.loc["tinyvit", "failures"] == 2
    assert metrics.histogram_mean(before, after, "tinyvit_batch_size", "tinyvit") == 2
    assert metrics.model_table(after).loc["tinyvit", "mean_latency_ms"] > 0


def test_the_plot_under_load_records_a_timeline_of_the_servers_counters(metrics_server):
    timeline, result = metrics.plot_under_load(metrics_server, seconds=2, concurrency=2, interval=0.5)
    assert len(timeline) >= 2 and timeline.seconds.is_monotonic_increasing
    moved = timeline.successes.iloc[-1] - timeline.successes.iloc[0]
    # from before the first request to after the last: every request the load sent
    assert moved == result.summary["requests"] > 0
    assert result.summary["errors"] == 0


@pytest.mark.parametrize("plot", ["plot_under_load", "plot_reading"])
def test_a_load_that_fails_raises_its_error_instead_of_an_empty_plot(metrics_server, plot):
    # The load runs in a thread: its error went to the thread's stderr, and the plot returned
    # (a timeline of no requests, None) as if the server had been idle.
    arguments = (metrics_server,) if plot == "plot_under_load" else (metrics_server, lambda *_: (0.0, 0.0))
    with pytest.raises(ValueError, match="payload must be one of"):
        getattr(metrics, plot)(*arguments, seconds=1, interval=0.2, payload="nonsense")


def test_the_students_reading_is_plotted_for_every_interval_with_requests(metrics_server):
    # Notebook 07: the student's function of two scrapes, applied to each interval of a load.
    seen = []

    def read(before, after, seconds):
        served = (metrics.total(after, "model_infer_request_success_total")
                  - metrics.total(before, "model_infer_request_success_total"))
        seen.append(served)
        return served / seconds, 100.0

    timeline, result = metrics.plot_reading(metrics_server, read, seconds=3, concurrency=2, interval=0.5)
    assert len(timeline) >= 1 and all(served > 0 for served in seen)  # no empty interval is read
    assert sum(seen) == result.summary["requests"] - result.summary["errors"]
    assert (timeline.requests_per_s > 0).all() and (timeline.p95_ms == 100.0).all()


LOG_LINE = "            mlserver.log(tinyvit_top1_confidence=float(confidence))"
CONFIDENCE_MISTAKES = {
    "forgets to log": ("pass", "did not appear on /metrics after 3 requests\\. Hint: Log it with mlserver.log from "
                               "predict\\(\\), once per image\\.$"),
    # Before: told to run with parallel_workers > 0, which the server already does.
    "logs under another name": ("            mlserver.log(top1_confidence=float(confidence))",
                                r"logged \['top1_confidence'\] instead"),
    "logs once per call": ("            pass\n        mlserver.log(tinyvit_top1_confidence=float(probabilities.max()))",
                           "observations for 7 images.*not one per predict\\(\\) call"),
    "logs a constant": ("            mlserver.log(tinyvit_top1_confidence=0.5)", "not the mean top-1 probability"),
    # Count and sum on /metrics are right: only the values one by one tell.
    # helper session 10: named as one value per call, 1 + 0 + 2 being the number of calls by chance
    "skips each call's first image": ("            pass\n"
                                      "        for confidence in probabilities.max(axis=1)[1:]:\n"
                                      "            mlserver.log(tinyvit_top1_confidence=float(confidence))",
                                      "observations for 7 images.*Hint: Log one value per image of the batch: one"),
    "logs the batch's mean once per image": (
        "            mlserver.log(tinyvit_top1_confidence=float(probabilities.max(axis=1).mean()))",
        "are not their top-1 probabilities: all three are the same value"),
}
# Right, and written unlike the solution: other order, other call style, a NumPy loop.
CONFIDENCE_DIFFERENT = ("            pass\n"
                        "        for value in np.sort(probabilities.max(axis=1))[::-1].tolist():\n"
                        "            mlserver.log(**{'tinyvit_top1_confidence': value})")


def confidence_code(replacement: str = None) -> str:
    notebook = nbformat.read(SOLUTIONS / "07_monitoring.ipynb", as_version=4)
    code = next(cell.source for cell in notebook.cells
                if cell.source.startswith("%%writefile confidence/confidence.py"))
    code = code.split("\n", 1)[1]
    if replacement is not None:
        assert LOG_LINE in code
        code = code.replace(LOG_LINE, replacement if replacement != "pass" else "            pass")
    return code


@pytest.fixture(scope="module")
def confidence_server(tmp_path_factory, checkpoint):
    """One server for the solution and each mistake: the test writes the code and reloads
    the model (seconds) instead of starting a server per variant."""
    folder = lab_service_copy(tmp_path_factory.mktemp("confidence") / "confidence", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(json.dumps(
        {"name": "confidence", "implementation": "confidence.ConfidenceModel"}))
    (folder / "confidence.py").write_text(confidence_code())
    with ModelServer(folder, parallel_workers=1, **FREE_PORTS) as server:
        yield server


@pytest.mark.parametrize("code", ["solution", "different"])
def test_custom_metric_check_passes_the_solution_and_a_different_right_answer(confidence_server, checkpoint,
                                                                               capsys, code):
    code = confidence_code() if code == "solution" else confidence_code(CONFIDENCE_DIFFERENT)
    checks.custom_metric(reload_with(confidence_server, {"confidence.py": code}), checkpoint=checkpoint)
    out = capsys.readouterr().out
    assert "one observation per image (7)" in out and "each image's own top-1 probability" in out


@pytest.mark.parametrize("mistake", CONFIDENCE_MISTAKES)
def test_custom_metric_check_names_each_mistake(confidence_server, checkpoint, mistake):
    replacement, message = CONFIDENCE_MISTAKES[mistake]
    server = reload_with(confidence_server, {"confidence.py": confidence_code(replacement)})
    with pytest.raises(checks.CheckFailed) as failure:
        checks.custom_metric(server, checkpoint=checkpoint)
    said = f"{failure.value.what} Hint: {failure.value.hint}"
    assert re.search(message, said), said
    assert "parallel_workers" not in failure.value.hint  # the server runs with a worker


def test_custom_metrics_are_missing_without_parallel_workers(server_without_workers, cat):
    # MLServer issue #1151, as the notebook shows it.
    infer(server_without_workers.infer_url, pixels_request([cat]))
    assert not (metrics.scrape(server_without_workers.metrics_url).metric == "tinyvit_batch_size").any()


def test_a_wrong_metrics_address_gives_a_clear_error(metrics_server):
    wrong = metrics_server.metrics_url.replace("/metrics", "/metric")
    with pytest.raises(metrics.MetricsUnavailable, match=r"/metric answered 404 Not Found"):
        metrics.scrape(wrong)


class FlakyMetrics(http.server.BaseHTTPRequestHandler):
    """Answers 500 while ``failures_left``, then samples: what a multiprocess /metrics
    endpoint does when a process is still creating its metrics file."""
    failures_left = 0
    answers = []

    def do_GET(self):
        status = 500 if FlakyMetrics.failures_left > 0 else 200
        FlakyMetrics.failures_left -= 1
        self.answers.append(status)
        body = b"Internal Server Error" if status == 500 else b"model_infer_request_success_total 3.0\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_passing_server_error_is_retried_and_a_lasting_one_is_explained():
    endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyMetrics)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{endpoint.server_port}/metrics"
    try:
        FlakyMetrics.failures_left = 1
        assert metrics.total(metrics.scrape(url), "model_infer_request_success_total") == 3
        assert FlakyMetrics.answers == [500, 200]
        FlakyMetrics.failures_left = 100
        with pytest.raises(metrics.MetricsUnavailable, match="500.*Internal Server Error"):
            metrics.scrape(url)
    finally:
        endpoint.shutdown()


def test_the_metric_file_check_names_a_log_line_that_did_not_run(tmp_path, checkpoint):
    # helper session 5: a log under a condition no image met was told to "log the metric by that name".
    folder = lab_service_copy(tmp_path / "confidence", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(json.dumps(
        {"name": "confidence", "implementation": "confidence.ConfidenceModel"}))
    (folder / "confidence.py").write_text(confidence_code(
        "            if confidence > 2:  # never: a probability is at most 1\n    " + LOG_LINE))
    with pytest.raises(checks.CheckFailed, match="though confidence.py names it: the line that logs it did not run"):
        checks.metric_file(folder, checkpoint=checkpoint)


def test_the_metric_file_check_names_an_answer_changed_by_the_measuring(tmp_path, checkpoint, capsys):
    # helper session 6: sorting the probabilities in place to read the largest logged the right
    # values (✔ 2/2) and sent every client its row sorted.
    folder = lab_service_copy(tmp_path / "confidence", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(json.dumps(
        {"name": "confidence", "implementation": "confidence.ConfidenceModel"}))
    code = confidence_code()
    loop = "        for confidence in probabilities.max(axis=1):\n"
    assert loop in code
    (folder / "confidence.py").write_text(code.replace(
        loop, "        probabilities.sort(axis=1)\n        for confidence in probabilities[:, -1]:\n"))
    with pytest.raises(checks.CheckFailed, match="no longer answers with the model's probabilities: each row holds "
                                                 "them in another order"):
        checks.metric_file(folder, checkpoint=checkpoint)
    (folder / "confidence.py").write_text(confidence_code(LOG_LINE.replace("float(confidence)",
                                                                          "100 * float(confidence)")))
    with pytest.raises(checks.CheckFailed, match="in percent"):
        checks.metric_file(folder, checkpoint=checkpoint)
    (folder / "confidence.py").write_text(code)
    checks.metric_file(folder, checkpoint=checkpoint)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize("line, message", [
    # helper session 12: text passed the write check (float() parses it) and broke MLServer's histogram.
    (LOG_LINE.replace("float(confidence)", "str(float(confidence))"), r"values of type \['str'\]"),
    # helper session 12: rounded values were told "all three are the same value".
    (LOG_LINE.replace("float(confidence)", "round(float(confidence), 2)"), r"rounded to [23] decimal\(s\), which they "
                                                                            "do not survive"),
    (LOG_LINE.replace("float(confidence)", "int(confidence * 100)"), r"rounded to \d decimal\(s\)|in whole percent"),
    # helper session 15: a second softmax (every value near 1/21841) was told "all three are the same value".
    ("            pass\n        again = np.exp(probabilities) / np.exp(probabilities).sum(axis=1, keepdims=True)\n"
     "        for confidence in again.max(axis=1):\n"
     "            mlserver.log(tinyvit_top1_confidence=float(confidence))", "a second softmax, which flattens them"),
    # helper session 12: a prometheus_client Histogram of the service's own was told "did not run".
    ("            HISTOGRAM.observe(float(confidence))", "observes it with prometheus_client itself"),
])
def test_the_metric_file_check_names_text_rounding_and_a_histogram_of_its_own(tmp_path, checkpoint, line, message):
    folder = lab_service_copy(tmp_path / "confidence", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(json.dumps(
        {"name": "confidence", "implementation": "confidence.ConfidenceModel"}))
    code = confidence_code(line)
    if "HISTOGRAM" in line:
        code = code.replace("import mlserver\n", "import mlserver\nimport prometheus_client\n", 1)
        assert "import prometheus_client" in code and "mlserver.log" not in code
        code += ("\n\nHISTOGRAM = prometheus_client.Histogram('tinyvit_top1_confidence', 'top-1',"
                 " registry=prometheus_client.CollectorRegistry())\n")
    (folder / "confidence.py").write_text(code)
    with pytest.raises(checks.CheckFailed, match=message):
        checks.metric_file(folder, checkpoint=checkpoint)
