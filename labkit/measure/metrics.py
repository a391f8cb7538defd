"""Read MLServer's Prometheus endpoint (``ModelServer.metrics_url``).

The text is parsed with prometheus_client's own parser, not with regular
expressions. MLServer 1.7.1 publishes, per model (labels ``model``/``version``,
or ``model_name``/``model_version`` for custom metrics): ``model_infer_request_success`` and
``model_infer_request_failure`` (counters), ``model_infer_request_duration``
(summary, seconds), ``batch_request_queue`` (histogram, queue length seen by
adaptive batching), and custom metrics logged with ``mlserver.log`` such as the
lab's ``tinyvit_batch_size``. Custom metrics and the batch queue appear only
with ``parallel_workers > 0`` (MLServer issue #1151).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable

import pandas as pd
import requests
from prometheus_client.parser import text_string_to_metric_families

from labkit.contract import BATCH_SIZE_METRIC

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.measure.loadgen import LoadResult
    from labkit.serving.server import ModelServer

# MLServer's endpoint merges the metrics files of all its processes (prometheus_client's
# multiprocess mode); while a process is still creating its file, a scrape can fail with
# a 500. It passes within moments, so a 5xx is retried a few times before it is reported.
SCRAPE_ATTEMPTS = 4
SCRAPE_RETRY_WAIT = 0.25


class MetricsUnavailable(RuntimeError):
    """The metrics endpoint did not answer with metrics."""


def fetch(url: str, timeout: float = 10) -> str:
    """The endpoint's text; a 5xx is retried, and any error says what came back."""
    answer = requests.get(url, timeout=timeout)
    for _ in range(SCRAPE_ATTEMPTS - 1):
        if answer.status_code < 500:
            break
        time.sleep(SCRAPE_RETRY_WAIT)
        answer = requests.get(url, timeout=timeout)
    if answer.status_code != 200:
        raise MetricsUnavailable(f"{url} answered {answer.status_code} {answer.reason}: {answer.text[:200]!r} "
                                 "(is this the server's metrics_url?)")
    return answer.text


def scrape(url: str, timeout: float = 10) -> pd.DataFrame:
    """Every sample on the endpoint: columns ``metric``, ``sample``, ``model``,
    ``labels`` (the other labels as text) and ``value``."""
    rows = []
    for family in text_string_to_metric_families(fetch(url, timeout)):
        for sample in family.samples:
            labels = dict(sample.labels)
            # MLServer's own metrics label the model `model`/`version`, custom ones `model_name`/`model_version`.
            model = labels.pop("model_name", None) or labels.pop("model", "")
            for key in ("model", "version", "model_version"):
                labels.pop(key, None)
            rows.append({"metric": family.name, "sample": sample.name, "model": model,
                         "labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                         "value": float(sample.value)})
    return pd.DataFrame(rows, columns=["metric", "sample", "model", "labels", "value"])


# MLServer's REST server (starlette-exporter) times every HTTP request in a histogram: its
# samples carry the path (the route, not the model's name), the method and the status code.
REST_DURATION = "rest_server_request_duration_seconds"
INFER_PATH = "/v2/models/{model_name}/infer"


def labelled(samples: pd.DataFrame, sample: str) -> pd.DataFrame:
    """The rows of one sample (``"rest_server_request_duration_seconds_bucket"``, say) with one
    column per label (``path``, ``status_code``, ``le``, ...; values as text) and ``value``."""
    rows = samples[samples["sample"] == sample]
    labels = [dict(pair.split("=", 1) for pair in text.split(",") if pair) for text in rows["labels"]]
    table = pd.DataFrame(labels, index=rows.index)
    table["model"], table["value"] = rows["model"], rows["value"]
    return table.reset_index(drop=True)


def rest_infer_seconds(samples: pd.DataFrame) -> tuple[float, float]:
    """(sum, count) of the REST server's durations of the infer route: what MLServer's REST
    handler took, from reading the request to writing its answer."""
    table = labelled(samples, f"{REST_DURATION}_sum")
    counts = labelled(samples, f"{REST_DURATION}_count")
    if table.empty:
        return 0.0, 0.0
    return (float(table[table["path"] == INFER_PATH]["value"].sum()),
            float(counts[counts["path"] == INFER_PATH]["value"].sum()))


def custom_histograms(url: str, timeout: float = 10) -> dict[str, float]:
    """The histograms a service logged itself (``mlserver.log``: labelled ``model_name``,
    where MLServer's own metrics say ``model``), each with its count of observations."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(fetch(url, timeout)):
        for sample in family.samples:
            if sample.name == f"{family.name}_count" and "model_name" in sample.labels:
                counts[family.name] = counts.get(family.name, 0.0) + float(sample.value)
    return counts


def total(samples: pd.DataFrame, sample: str, model: str | None = None) -> float:
    """The sum of one sample's values (over label sets), optionally for one model."""
    chosen = samples[samples["sample"] == sample]
    if model is not None:
        chosen = chosen[chosen["model"] == model]
    return float(chosen["value"].sum())


def histogram_mean(before: pd.DataFrame, after: pd.DataFrame, metric: str, model: str | None = None) -> float:
    """Mean of the observations a histogram received between two scrapes (NaN if none)."""
    count = total(after, f"{metric}_count", model) - total(before, f"{metric}_count", model)
    if count <= 0:
        return float("nan")
    return (total(after, f"{metric}_sum", model) - total(before, f"{metric}_sum", model)) / count


def model_table(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per model: successes, failures, mean latency, mean batch queue, mean batch size."""
    models = sorted(model for model in samples["model"].unique() if model)
    rows = []
    for model in models:
        rows.append({
            "model": model,
            "successes": total(samples, "model_infer_request_success_total", model),
            "failures": total(samples, "model_infer_request_failure_total", model),
            "mean_latency_ms": 1000 * _ratio(samples, "model_infer_request_duration", model),
            "mean_batch_queue": _ratio(samples, "batch_request_queue", model),
            "mean_batch_size": _ratio(samples, BATCH_SIZE_METRIC, model),
        })
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def delta(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Requests each model served between two scrapes (a model not yet seen counts from 0)."""
    rows = []
    for model in sorted(model for model in after["model"].unique() if model):
        rows.append({"model": model, **{
            column: total(after, sample, model) - total(before, sample, model)
            for column, sample in (("successes", "model_infer_request_success_total"),
                                   ("failures", "model_infer_request_failure_total"))}})
    return pd.DataFrame(rows, columns=["model", "successes", "failures"]).set_index("model")


def _ratio(samples: pd.DataFrame, metric: str, model: str) -> float:
    count = total(samples, f"{metric}_count", model)
    return total(samples, f"{metric}_sum", model) / count if count else float("nan")


def plot_under_load(server: ModelServer, seconds: float = 10, concurrency: int = 4, interval: float = 1.0,
          payload: str = "jpeg") -> tuple[pd.DataFrame, LoadResult]:
    """Run a load for ``seconds`` while plotting, live, the requests per second the server's
    own counters report. Returns (timeline table, load result); raises the load's error."""
    load, outcome = _load_in_background(server, seconds, concurrency, payload)
    timeline, started = [], time.monotonic()
    show = _live_figure()

    def sample() -> None:
        samples = scrape(server.metrics_url)
        timeline.append({"seconds": time.monotonic() - started,
                         "successes": total(samples, "model_infer_request_success_total", server.name),
                         "failures": total(samples, "model_infer_request_failure_total", server.name)})
        show(_timeline_plot(pd.DataFrame(timeline)))

    # The counters before the first request and after the last one (CI, stop 47: sampled only
    # while the load ran, a slow start left every sample before the first answer).
    sample()
    load.start()
    while load.is_alive():
        load.join(interval)
        sample()
    # A scrape right after the last answers can come before the server has counted them (the
    # fresh-clone run of this stop: 10 of 12 under adaptive batching): sample again, for at most
    # 2 s, until the counters hold every answer the load got.
    result = _result_of(outcome)
    _until_counted(timeline[0]["successes"] + result.summary["requests"] - result.summary["errors"],
                   lambda: timeline[-1]["successes"], sample)
    return pd.DataFrame(timeline), result


def plot_reading(server: ModelServer, read: Callable[[pd.DataFrame, pd.DataFrame, float], tuple],
                 seconds: float = 10, concurrency: int = 4, interval: float = 1.0,
                 payload: str = "jpeg") -> tuple[pd.DataFrame, LoadResult]:
    """Run a load for ``seconds`` while plotting, live, what ``read(before, after, seconds)``
    (the student's own function of two scrapes: requests per second, p95 in ms) makes of each
    ``interval`` of the server's metrics. Returns (timeline table, load result); raises the
    load's error."""
    load, outcome = _load_in_background(server, seconds, concurrency, payload)
    timeline, started = [], time.monotonic()
    show = _live_figure()
    first = previous = scrape(server.metrics_url)
    previous_at = time.monotonic()

    def successes(samples: pd.DataFrame) -> float:
        return total(samples, "model_infer_request_success_total", server.name)

    def read_interval() -> None:
        nonlocal previous, previous_at
        samples, now = scrape(server.metrics_url), time.monotonic()
        # An interval in which no request ended has no p95: it joins the next one.
        if successes(samples) > successes(previous):
            rate, p95 = read(previous, samples, now - previous_at)
            timeline.append({"seconds": now - started, "requests_per_s": float(rate), "p95_ms": float(p95)})
            previous, previous_at = samples, now
            show(_reading_plot(pd.DataFrame(timeline)))

    load.start()
    while load.is_alive():
        load.join(interval)
        read_interval()
    # As in plot_under_load: the last answers can be counted after the last scrape (the fresh-clone
    # run of stop 50: 8 of 10 read), so read again, for at most 2 s, until the counters hold them.
    result = _result_of(outcome)
    _until_counted(successes(first) + result.summary["requests"] - result.summary["errors"],
                   lambda: successes(previous), read_interval)
    return pd.DataFrame(timeline), result


def _until_counted(answered: float, counted: Callable[[], float], sample: Callable[[], None],
                   seconds: float = 2) -> None:
    """``sample()`` again, for at most ``seconds``, until ``counted()`` reaches ``answered``: the
    server counts an answer a moment after the client has it."""
    settled = time.monotonic() + seconds
    while counted() < answered and time.monotonic() < settled:
        time.sleep(0.1)
        sample()


def _load_in_background(server: ModelServer, seconds: float, concurrency: int,
                        payload: str) -> tuple[threading.Thread, dict]:
    """(the thread that runs the load once started, the dict its result goes into under ``"result"``)."""

    from labkit.measure.loadgen import run_load

    outcome: dict[str, LoadResult] = {}

    def run() -> None:
        try:
            outcome["result"] = run_load(server.infer_url, concurrency, seconds, payload=payload, progress=False)
        except BaseException as error:  # raised again by _result_of, in the caller's thread
            outcome["error"] = error  # type: ignore[assignment]

    return threading.Thread(target=run, daemon=True), outcome


def _result_of(outcome: dict) -> LoadResult:
    """The load's result; its error, raised in the caller's thread, if it failed (a plot of a
    load that never ran would look like an idle server)."""
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _live_figure() -> Callable:
    """A function that shows a figure in place of the one it showed before (one output area
    redrawn, not a new plot per second), and closes it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    handle = display(None, display_id=True)

    def show(figure: Figure) -> None:
        if handle is not None:
            handle.update(figure)
        plt.close(figure)

    return show


def _reading_plot(timeline: pd.DataFrame):
    import matplotlib.pyplot as plt

    figure, (rate, latency) = plt.subplots(1, 2, figsize=(9, 2.5))
    rate.plot(timeline.seconds, timeline.requests_per_s, marker="o", color="#188038")
    rate.set_title("requests/s (your function)")
    latency.plot(timeline.seconds, timeline.p95_ms, marker="o", color="#1a73e8")
    latency.set_title("p95 ms (your function)")
    for axis in (rate, latency):
        axis.set_xlabel("seconds since the load started")
        axis.set_ylim(bottom=0)
    figure.tight_layout()
    return figure


def _timeline_plot(timeline: pd.DataFrame):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 2.5))
    rate = timeline.successes.diff() / timeline.seconds.diff()
    axis.plot(timeline.seconds, rate, marker="o", color="#188038", label="successful requests/s")
    axis.plot(timeline.seconds, timeline.failures.diff() / timeline.seconds.diff(), color="#b00020",
              label="failed requests/s")
    axis.set_xlabel("seconds since the load started")
    axis.legend(loc="upper left")
    figure.tight_layout()
    return figure
