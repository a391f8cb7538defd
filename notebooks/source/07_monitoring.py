# %% [markdown]
# # 07 · Monitoring: the server's metrics, inline
#
# A service in production is watched, not visited. MLServer publishes what it does in the
# **Prometheus** text format on its metrics port (8082 by default) at `/metrics`: how many
# inference requests succeeded or failed, how long they took, how full the batching queue
# was. A Prometheus server scrapes such endpoints every few seconds and Grafana draws them;
# here you read them straight into the notebook.
#
# **What you do here, and what is graded (4 points).**
#
# * Exercise 1, your server's request rate and p95 from two scrapes of its metrics (2 points);
# * Exercise 2, a custom metric your service logs for every image (2 points).

# %%
from labkit import show
from labkit.serving import ModelServer

random_weights = show.weights_banner()
server = ModelServer("tinyvit", parallel_workers=1, max_batch_size=8, max_batch_time=0.01).start()
server

# %% [markdown]
# ## The raw endpoint
#
# One line per sample: a metric name, labels in braces, a value. Lines starting with `#` say
# what each metric is.

# %%
import requests

from labkit.client import infer, load_image, pixels_request

infer(server.infer_url, pixels_request([load_image()]))  # something to count
text = requests.get(server.metrics_url, timeout=10).text
print("\n".join(line for line in text.splitlines() if "model_infer_request" in line)[:1500])

# %% [markdown]
# ## Parse it, don't grep it
#
# `prometheus_client` ships the parser Prometheus' own Python client uses.
# `labkit.measure.metrics.scrape` turns the endpoint into a table: one row per sample, with the model
# name as its own column.

# %%
# NBVAL_CHECK_OUTPUT
from labkit.measure import metrics

samples = metrics.scrape(server.metrics_url)
per_model = sorted(set(samples.loc[samples.model == "tinyvit", "metric"]))
print("metrics about model 'tinyvit':")
print("\n".join(per_model))

# %% [markdown]
# * `model_infer_request_success` / `_failure`: counters of inference requests.
# * `model_infer_request_duration`: time spent per request (a summary: `_sum` and `_count`).
# * `batch_request_queue`: requests waiting in the adaptive-batching queue, sampled per batch.
# * `parallel_request_queue` (not in this list: it counts for the whole server, with no model
#   label): requests in flight to the parallel workers.
# * `tinyvit_batch_size`: a **custom** metric: the lab's service logs the images of every
#   `predict()` call with `mlserver.log(...)`.
#
# One tidy row per model:

# %%
metrics.model_table(samples).round(2)

# %% [markdown]
# ## Watch a load, live
#
# `metrics.plot_under_load` sends load for a few seconds while it scrapes the endpoint every
# second and redraws the request rate the **server** reports (not what the client measured).

# %%
from labkit.config import quick_mode

before = metrics.scrape(server.metrics_url)
timeline, load = metrics.plot_under_load(server, seconds=5 if quick_mode() else 20, concurrency=8)
after = metrics.scrape(server.metrics_url)

# %% [markdown]
# The deltas between the two scrapes are exactly the work of the load test:

# %%
# NBVAL_CHECK_OUTPUT
served = metrics.delta(before, after).loc["tinyvit", "successes"]
print("server counted every successful request of the load test:", served == load.summary["requests"] - load.summary["errors"])
print("failed requests:", load.summary["errors"])

# %%
metrics.delta(before, after)

# %%
print(f"mean batch size during the load: {metrics.histogram_mean(before, after, 'tinyvit_batch_size', 'tinyvit'):.1f}")
print(f"mean time per request in the server: {1000 * metrics.histogram_mean(before, after, 'model_infer_request_duration', 'tinyvit'):.0f} ms")

# %% [markdown]
# ## Exercise 1: your server's rate and p95, from its own numbers
#
# The counters above give a rate; a latency percentile needs a **histogram**. MLServer's REST
# server times every HTTP request into `rest_server_request_duration_seconds`: for each upper
# bound `le` (in seconds: 0.005, 0.01, ..., 10, `+Inf`), a `_bucket` sample counts the requests
# that took **at most** that long, since the server started. Its labels say which requests:
# `path` (the route, `/v2/models/{model_name}/infer` for inference, also `.../ready` for health
# probes) and `status_code`. `metrics.labelled(samples, sample)` gives one sample's rows with one
# column per label. Label values are text, as Prometheus writes them (`"200"`, `"+Inf"`); read
# the bound as `rows["le"]` (`rows.le` is a pandas method):

# %%
from labkit import checks

metrics.labelled(after, "rest_server_request_duration_seconds_bucket").tail(4)

# %% [markdown]
# Write `served_rate_and_p95(before, after, seconds)`: from two scrapes and the seconds they span
# (here the load's duration: nothing else asked this server for anything in between),
# the **successful inference requests per second** between them and their **p95 latency in
# milliseconds**, as Prometheus' `histogram_quantile(0.95, ...)` reads it off the buckets. Your
# function gets tables like `before` and `after`; the check also gives it scrapes it makes up.
#
# <details><summary>Hint 1: which rows, which counts</summary>
#
# Keep the bucket rows of the inference path with status 200. Every count grows from the
# server's start: the requests between two scrapes are the difference, bound by bound.
# </details>
#
# <details><summary>Hint 2: where the 95th percentile lies</summary>
#
# The count at `+Inf` is every request. The 95th percentile is the time below which 95% of
# them finished: the first bound whose (cumulative) count reaches 95% of all ends the bucket
# it lies in.
# </details>
#
# <details><summary>Hint 3: one number inside the bucket</summary>
#
# A histogram does not know where in its bucket a request fell. Prometheus assumes they are
# spread evenly and interpolates linearly between the bucket's lower and upper bound, by how
# far into the bucket's own count the 95% rank falls; in the `+Inf` bucket, which has no upper
# bound, it answers the last finite bound. (The check accepts any value inside the right
# bucket.)
# </details>

# %% solution id=server-numbers
import math

import pandas as pd


def served_rate_and_p95(before: pd.DataFrame, after: pd.DataFrame, seconds: float) -> tuple[float, float]:
    """Successful inference requests per second between two scrapes, and their p95 in ms."""
    ### BEGIN SOLUTION
    def infer_buckets(samples: pd.DataFrame) -> pd.Series:
        rows = metrics.labelled(samples, "rest_server_request_duration_seconds_bucket")
        rows = rows[(rows["path"] == "/v2/models/{model_name}/infer") & (rows["status_code"] == "200")]
        return rows.groupby(rows["le"].astype(float))["value"].sum()

    buckets = infer_buckets(after).subtract(infer_buckets(before), fill_value=0)
    count = buckets[math.inf]
    rank = 0.95 * count
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets.items():
        if cumulative >= rank:
            if math.isinf(bound):
                return count / seconds, 1000 * lower
            return count / seconds, 1000 * (lower + (bound - lower) * (rank - below) / (cumulative - below))
        lower, below = bound, cumulative
    ### END SOLUTION


rate, p95 = served_rate_and_p95(before, after, load.summary["seconds"])
print(f"the server's numbers: {rate:.1f} requests/s, p95 {p95:.0f} ms")
print(f"the load generator's: {load.summary['throughput_rps']:.1f} requests/s, p95 {load.summary['p95_ms']:.0f} ms")

# %% [markdown]
# The check runs your function on scrapes it draws (with health probes and refused requests
# in them, and earlier traffic before the first scrape) and on yours, and compares your rate
# with what the load generator counted over the same seconds (within 10%). The two p95s
# differ: the client's includes the trip through its own HTTP stack, and the server's is known
# only to its bucket, which above 1 s spans seconds (2.5 to 5 s, say): interpolation puts it
# somewhere inside. Finer buckets cost memory and scrape size on every server.

# %% tests id=server-numbers-check points=2
from labkit import checks

checks.served_rate_and_p95(served_rate_and_p95, before, after, load.summary["seconds"], load)

# %% [markdown]
# Your function, applied to every second of a new load: the rate and p95 of your own server
# over time, as a dashboard would draw them from Prometheus.

# %% demo
readings, _ = metrics.plot_reading(server, served_rate_and_p95, seconds=6 if quick_mode() else 20, concurrency=8,
                                   interval=2)

# %% [markdown]
# ## Exercise 2: a custom metric
#
# How sure is the model about what it serves? Add a metric `tinyvit_top1_confidence`: for every
# image, log the probability of its top class with `mlserver.log(tinyvit_top1_confidence=...)`.
# `mlserver.register` (already in `load()`) gives it a description; `mlserver.log` records a
# value into a histogram labelled with the model's name.
#
# Your service lives in `confidence/` next to this notebook: a copy of the lab's service
# (`serve-model.py` and its helpers), which your class in `confidence.py` extends.

# %%
from labkit.workspace import lab_service_copy

folder = lab_service_copy("confidence")
checks.check_each_write(folder, service_check=checks.metric_file)
server.stop()  # one TinyViT server at a time (memory): the lab's starts again after your service's

# %%
%%writefile confidence/model-settings.json
{
  "name": "confidence",
  "implementation": "confidence.ConfidenceModel"
}

# %% solution id=custom-metric
%%writefile confidence/confidence.py
import importlib

import mlserver
import numpy as np
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from image_batch import decode_images

# The lab's service, next to this file ("serve-model" has a hyphen: no plain import).
lab_service = importlib.import_module("serve-model")


class ConfidenceModel(lab_service.TinyViTModel):
    async def load(self) -> bool:
        ready = await super().load()
        mlserver.register("tinyvit_top1_confidence", "Probability of the top class, per image")
        return ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        probabilities = self.classify(decode_images(payload))
        self.log_confidence(probabilities)
        return InferenceResponse(model_name=self.name,
                                 outputs=[NumpyCodec.encode_output(lab_service.OUTPUT_NAME, probabilities)])

    def log_confidence(self, probabilities: np.ndarray) -> None:
        """Log tinyvit_top1_confidence for every image: probabilities is [N, 21841]."""
        ### BEGIN SOLUTION
        for confidence in probabilities.max(axis=1):
            mlserver.log(tinyvit_top1_confidence=float(confidence))
        ### END SOLUTION

# %% [markdown]
# Custom metrics travel from the worker processes to the main process's endpoint, so they
# need `parallel_workers > 0`: with `parallel_workers: 0` they are silently missing
# (MLServer issue #1151).

# %%
confidence = ModelServer("confidence", parallel_workers=1)
confidence.start()

# %% [markdown]
# <details><summary>Hint 1: how many values per request</summary>
#
# A request may hold several images, and with adaptive batching one `predict()` call holds
# the images of several requests: log one value per image, not one per call.
# </details>
#
# <details><summary>Hint 2: which value</summary>
#
# Each row of `probabilities` belongs to one image, and that image's top-1 probability is the
# largest value of its row. `mlserver.log` takes the metric's name as a keyword argument and
# a plain Python number as its value.
# </details>
#
# The check sends batches of different images it chooses, then reads your metric off
# `/metrics`: one observation per image, and their mean equal to the mean top-1 probability
# that TinyViT, run in this notebook, gives those images. `/metrics` keeps only a count, a sum
# and coarse buckets, so the check also calls your `predict()` on a batch of three images (in a
# Python process of its own) and compares every value it logs with that image's own.

# %% tests id=custom-metric-check points=2
from labkit import checks

checks.custom_metric(confidence)

# %% demo
confidence.stop()
server.start();

# %% while grading
confidence.stop()

# %% [markdown]
# See issue #1151 for yourself, with a custom metric the lab's own service logs
# (`tinyvit_batch_size`, images per `predict()` call): present with a parallel worker, missing
# with `parallel_workers: 0`.

# %% demo
# NBVAL_CHECK_OUTPUT
for workers in (1, 0):
    if server.scaling["parallel_workers"] != workers:  # the server above has one worker
        server.restart(parallel_workers=workers)
    infer(server.infer_url, pixels_request([load_image()]))
    samples = metrics.scrape(server.metrics_url)
    present = (samples.metric == "tinyvit_batch_size").any()
    print(f"tinyvit_batch_size with parallel_workers={workers}:", "present" if present else "missing")

# %% [markdown]
# ## Prometheus and Grafana
#
# In production a **Prometheus** server scrapes `/metrics` on a schedule and keeps the history,
# and you ask it questions in PromQL. `monitoring/prometheus.yml` is a scrape configuration for
# the lab server. If the `prometheus` binary is installed (Debian package `prometheus`),
# `labkit.serving.prometheus` starts it on loopback against the running server, and you can query it
# through its HTTP API:

# %% demo
from labkit.serving import prometheus

if prometheus.available():
    with prometheus.Prometheus(server.metrics_url) as prom:
        query = 'sum(model_infer_request_success_total{model="tinyvit"})'
        start = float(prom.wait_for(query)[0]["value"][1])
        for _ in range(5):
            infer(server.infer_url, pixels_request([load_image()]))
        result = prom.wait_for(f"{query} >= {start + 5}")
        print(query, "=", result[0]["value"][1] if result else "no data yet")
        rate = prom.wait_for("sum by (model) (rate(model_infer_request_success_total[1m]))")
        print("requests per second over the last minute:", [(r["metric"]["model"], r["value"][1]) for r in rate])
else:
    print("Prometheus is not installed here. On Debian/Ubuntu: sudo apt-get install prometheus, then\n"
          "  prometheus --config.file=monitoring/prometheus.yml --web.listen-address=127.0.0.1:9090")

# %% [markdown]
# The query adds up with `sum(...)`: MLServer keeps one series of the counter per label set, and
# it labels a REST request `version=""` and a gRPC one `version="None"`, so a server that took
# both has two series for one model; without the sum a query compares each one alone.
# A query such as `rate(model_infer_request_success_total[1m])` is the request rate per model;
# Grafana (not needed for this lab) turns such queries into dashboards and alerts.
#
# ## Stop the server

# %%
# NBVAL_CHECK_OUTPUT
server.stop()
print("running:", server.running, confidence.running)

# %% [markdown]
# **The end of the lab.** You built a service, sent it requests, configured runtimes, scaled,
# packaged and monitored it. `deploy/` (KServe, JupyterHub) and `monitoring/` (Prometheus) in
# the lab's folder show the same service outside a notebook.
