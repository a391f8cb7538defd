"""Read MLServer's Prometheus endpoint (``ModelServer.metrics_url``).

The text is parsed with prometheus_client's own parser, not with regular
expressions. MLServer 1.7.1 publishes, per model (labels ``model_name`` and
``model_version``): ``model_infer_request_success`` and
``model_infer_request_failure`` (counters), ``model_infer_request_duration``
(histogram, seconds), ``batch_request_queue`` (histogram, queue length seen by
adaptive batching), and custom metrics logged with ``mlserver.log`` such as the
lab's ``tinyvit_batch_size``. Custom metrics and the batch queue appear only
with ``parallel_workers > 0`` (MLServer issue #1151).
"""

import pandas as pd
import requests
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, timeout: float = 10) -> pd.DataFrame:
    """Every sample on the endpoint: columns ``metric``, ``sample``, ``model``,
    ``labels`` (the other labels as text) and ``value``."""
    text = requests.get(url, timeout=timeout).text
    rows = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            model = labels.pop("model_name", "")
            labels.pop("model_version", None)
            rows.append({"metric": family.name, "sample": sample.name, "model": model,
                         "labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                         "value": float(sample.value)})
    return pd.DataFrame(rows, columns=["metric", "sample", "model", "labels", "value"])


def total(samples: pd.DataFrame, sample: str, model: str = None) -> float:
    """The sum of one sample's values (over label sets), optionally for one model."""
    chosen = samples[samples["sample"] == sample]
    if model is not None:
        chosen = chosen[chosen["model"] == model]
    return float(chosen["value"].sum())


def histogram_mean(before: pd.DataFrame, after: pd.DataFrame, metric: str, model: str = None) -> float:
    """Mean of the observations a histogram received between two scrapes (NaN if none)."""
    count = total(after, f"{metric}_count", model) - total(before, f"{metric}_count", model)
    if count <= 0:
        return float("nan")
    return (total(after, f"{metric}_sum", model) - total(before, f"{metric}_sum", model)) / count
