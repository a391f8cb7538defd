"""Comparisons measured side by side: rows of interleaved rounds (A, B, A, B, ...) summed up
as each candidate's median, its spread over the rounds, and its ratio to a baseline, with how
busy the machine was while they ran. Ratios carry the conclusion: on a shared CPU absolute
rates move, and rounds taken in turn share the same disturbances."""

from __future__ import annotations

from typing import Callable

import pandas as pd

from labkit.measure.machine import describe


def interleaved(candidates: dict, measure_one: Callable[[object], dict], rounds: int,
                progress: bool = False) -> pd.DataFrame:
    """``measure_one(candidate)`` for each candidate in turn, ``rounds`` times (A, B, A, B):
    one row per measurement, with ``round`` and ``candidate`` columns.

    Args:
        candidates: label -> what ``measure_one`` takes.
        measure_one: one measurement's row (a dict of numbers).
        rounds: how many times each candidate is measured.
        progress: a bar that counts the measurements (for calls that show none of their own: a
            busy machine makes seconds of them).
    """
    from tqdm.auto import tqdm

    rows = []
    with tqdm(total=rounds * len(candidates), desc="measurements", disable=not progress) as bar:
        for round_ in range(rounds):
            for name, candidate in candidates.items():
                rows.append({"candidate": name, "round": round_ + 1, **measure_one(candidate)})
                bar.update()
    return pd.DataFrame(rows)


def side_by_side(rows: pd.DataFrame, baseline: str, by: str = "candidate",
                 rate: str = "throughput_rps") -> pd.DataFrame:
    """Per candidate: the rounds, the median ``rate`` and its spread (lowest to highest
    round), the median p50 and p95 where measured, and the median rate's ratio to
    ``baseline``'s.

    Args:
        rows: :func:`interleaved`'s rows.
        baseline: the candidate the ratios divide by.
        by: the column that names the candidate.
        rate: the column compared.
    """
    grouped = rows.groupby(by, sort=False)
    table = pd.DataFrame({"rounds": grouped.size(), rate: grouped[rate].median(),
                          f"{rate} spread": grouped[rate].agg(lambda values: f"{values.min():.1f}-{values.max():.1f}")})
    for column in ("p50_ms", "p95_ms"):
        if column in rows:
            table[column] = grouped[column].median()
    table[f"vs {baseline}"] = table[rate] / table.loc[baseline, rate]
    return table


def machine_note(rows: pd.DataFrame) -> str:
    """The sentence on the machine's load over the rounds: the busiest round's share.

    Args:
        rows: measurements with an ``others_cpu_share`` column (None where unknown).
    """
    if "others_cpu_share" not in rows or rows["others_cpu_share"].isna().all():
        return "how busy the machine was is not known for these rows."
    return describe(float(rows["others_cpu_share"].max())).replace("while this ran", "in the busiest round")


def scaling_findings(results: pd.DataFrame, concurrency: int = 8) -> list[str]:
    """What a sweep of workers x batching (notebook 05) shows at ``concurrency`` callers, read
    from its own rows: two workers against one (same batching), batching against none (same
    workers), as ratios of throughput, with the batches that formed. The story of the
    notebook follows these lines, not a number from elsewhere.

    Args:
        results: the sweep's rows (``parallel_workers``, ``max_batch_size``, ``concurrency``,
            ``throughput_rps``, ``avg_batch``).
        concurrency: the callers whose rows are read.

    Returns:
        one sentence per comparison the rows allow (none when they allow none).
    """
    rows = results[results.concurrency == concurrency]
    if rows.empty or not {"parallel_workers", "max_batch_size"} <= set(rows):
        return []
    rate = rows.groupby(["parallel_workers", "max_batch_size"]).throughput_rps.median()
    batches = rows.groupby(["parallel_workers", "max_batch_size"]).avg_batch.median() \
        if "avg_batch" in rows else None
    lines = []
    sizes = sorted({size for _, size in rate.index})
    workers = sorted({count for count, _ in rate.index})
    for size in sizes:
        if (1, size) in rate and (2, size) in rate:
            batching = "with batching" if size > 1 else "without batching"
            lines.append(f"two workers served {rate[(2, size)] / rate[(1, size)]:.2f}x what one worker did, "
                         f"{batching}")
    for count in workers:
        if (count, 1) in rate and any(size > 1 and (count, size) in rate for size in sizes):
            size = max(size for size in sizes if (count, size) in rate)
            formed = f" (batches of {batches[(count, size)]:.1f} images on average)" if batches is not None else ""
            lines.append(f"batching served {rate[(count, size)] / rate[(count, 1)]:.2f}x no batching, with "
                         f"{count} worker{'s' if count > 1 else ''}{formed}")
    return [f"At {concurrency} callers in your run, {line}." for line in lines]
