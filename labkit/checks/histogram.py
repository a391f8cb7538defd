"""MLServer's REST latency histogram between two scrapes (``labkit.measure.metrics.scrape``'s
tables), read as notebook 07's check reads it and as its misreadings read it: the successful
inference requests' cumulative counts by bound, the bucket that holds a quantile, the bound a
mistaken reading finds."""

from __future__ import annotations

import math

import pandas as pd

from labkit.measure.metrics import INFER_PATH, REST_DURATION, labelled

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf)


def infer_buckets(samples: pd.DataFrame, any_path: bool = False, any_status: bool = False) -> pd.Series:
    """Cumulative counts of successful REST inference requests, by upper bound (seconds);
    with ``any_path`` or ``any_status``, the rows a careless selection keeps too."""
    table = labelled(samples, f"{REST_DURATION}_bucket")
    if table.empty:
        return pd.Series(0.0, index=list(BOUNDS))
    table = table[((table["path"] == INFER_PATH) | any_path) & ((table["status_code"] == "200") | any_status)]
    return table.groupby(table["le"].astype(float))["value"].sum().reindex(list(BOUNDS), fill_value=0.0)


def between(before: pd.DataFrame, after: pd.DataFrame) -> tuple[float, pd.Series]:
    buckets = infer_buckets(after) - infer_buckets(before)
    return float(buckets[math.inf]), buckets


def mean_ms(before: pd.DataFrame, after: pd.DataFrame) -> float:
    """The mean latency, in ms, of the successful inference requests between two scrapes."""
    def summed(samples: pd.DataFrame, sample: str) -> float:
        table = labelled(samples, f"{REST_DURATION}_{sample}")
        if table.empty:
            return 0.0
        return float(table[(table["path"] == INFER_PATH) & (table["status_code"] == "200")]["value"].sum())

    count = summed(after, "count") - summed(before, "count")
    return 1000 * (summed(after, "sum") - summed(before, "sum")) / count if count > 0 else math.nan


def count_all(samples: pd.DataFrame) -> float:
    table = labelled(samples, f"{REST_DURATION}_count")
    return float(table["value"].sum()) if not table.empty else 0.0


def bucket_of(buckets: pd.Series, q: float) -> tuple[float, float]:
    """(lower, upper) bound, in seconds, of the bucket holding the q-quantile (upper: inf
    for the +Inf bucket)."""
    rank = q * buckets[math.inf]
    bounds = list(buckets.index)
    for index, bound in enumerate(bounds):
        if buckets[bound] >= rank:
            return (bounds[index - 1] if index else 0.0), bound
    return bounds[-2], math.inf


def first_bound(buckets: pd.Series, text_order: bool = False, finite_only: bool = False,
                 strict: bool = False, quantile: float = 0.95, one_past: bool = False,
                 floored: bool = False) -> float:
    """The upper bound (s) of the first bucket whose cumulative count reaches 95% (or
    ``quantile``), read the way a student's mistake reads it (10 s when none does); ``strict``:
    passes it; ``one_past``: the bound after it (helper session 8: named as rows kept carelessly);
    ``floored``: reaches the rank rounded down to a whole request."""
    bounds = [bound for bound in buckets.index if math.isfinite(bound)]
    if text_order:
        bounds.sort(key=repr)
    total = buckets[max(bounds)] if finite_only else buckets[math.inf]
    rank = math.floor(quantile * total) if floored else quantile * total
    reached = [index for index, bound in enumerate(bounds)
               if (buckets[bound] > rank if strict else buckets[bound] >= rank)]
    if not reached:
        return math.inf if one_past else 10.0  # the +Inf bucket has none after it
    index = reached[0] + (1 if one_past else 0)
    return bounds[index] if index < len(bounds) else math.inf


def in_bucket(value_ms: float, bucket: tuple[float, float]) -> bool:
    """Whether a p95 in ms is accepted for ``bucket`` (its bounds in s): inside it, bounds included."""
    lower, upper = (1000 * bound for bound in bucket)
    return lower * (1 - 1e-9) <= value_ms <= upper * (1 + 1e-9) or (math.isinf(upper) and value_ms >= lower)
