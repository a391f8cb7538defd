"""Notebook 05's ``pick_configuration(results, budget_ms)``: the row label of the table that
meets the p95 budget with the highest throughput, or None.

:func:`scaling_choice` calls it on the student's own table, on that table under other row
labels, and on tables it draws for this call, in which the plausible wrong picks disagree
with the right one: the lowest p95, the budget read off the p50, the fastest row whatever its
p95, a row exactly on the budget left out, a position for a label. (On a student's own table
they often coincide.) Each is named by what the function did, not by the code to write. A
function that failed here is not charged again by the hidden check (:func:`already_failed`).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Callable

import numpy as np

from labkit.checks.common import CheckFailed, passed

if TYPE_CHECKING:
    import pandas as pd

Pick = Callable[["pd.DataFrame", float], object]
DRAWN_TABLES = 3
# The functions that failed this check in this kernel: one mistake costs one exercise.
_FAILED: weakref.WeakSet = weakref.WeakSet()


def already_failed(pick: Pick) -> bool:
    """``pick`` failed :func:`scaling_choice` in this kernel (its points are taken there)."""
    return pick in _FAILED


def scaling_choice(results: pd.DataFrame, pick: Pick, budget_ms: float) -> None:
    """Notebook 05: ``pick(results, budget_ms)`` returns a row label of ``results`` that meets
    the p95 budget with the highest throughput among the rows that do (a stricter choice that
    also leaves out rows with failed requests is right too), on the student's table and on
    tables drawn for this call with the same columns."""
    try:
        choice = _answer(results, pick, budget_ms, "your table")
        if _is_label(choice, results):
            # First: a label written into the function, or a position that is a label too,
            # names another row when the labels change (named as such, not as a wrong row).
            _same_row_under_other_labels(results, pick, budget_ms, choice)
        _judge(results, choice, budget_ms, "your table")
        rng = np.random.default_rng()
        for number in range(DRAWN_TABLES):
            # Budgets far from the notebook's (0.4 and 2.5 times it): a function that reads the
            # notebook's budget_ms instead of its argument, or compares text, names another row.
            table, budget = drawn_table(results, rng, on_budget=number == 1, empty=number == DRAWN_TABLES - 1,
                                        budget=budget_ms * (0.4 if number % 2 else 2.5), just_over=number == 0)
            where = f"a table drawn for this check ({number + 1} of {DRAWN_TABLES})"
            _judge(table, _answer(table, pick, budget, where), budget, where)
    except CheckFailed as failure:
        if failure.kind != "unwritten":  # an untouched function earns no points anywhere
            try:
                _FAILED.add(pick)
            except TypeError:  # not weak-referable (a callable object without __weakref__)
                pass
        raise
    row = f"row {choice} ({results.loc[choice].configuration}, concurrency {results.loc[choice].concurrency})" \
        if choice is not None else "no row (None)"
    passed(f"on your table, {row} meets the {budget_ms:.0f} ms p95 budget with the best throughput; right on "
           f"{DRAWN_TABLES} tables drawn for this check too")


def _answer(results: pd.DataFrame, pick: Pick, budget_ms: float, where: str) -> object:
    """What ``pick`` returns for ``results``: CheckFailed if it raises or returns rows."""
    import pandas as pd

    try:
        choice = pick(results.copy(), budget_ms)
    except NotImplementedError:
        raise CheckFailed("pick_configuration is not written yet (it raises NotImplementedError).",
                          "Replace the placeholder lines of its cell with your code, then run that cell.",
                          kind="unwritten") from None
    except Exception as error:
        raise CheckFailed(f"On {where}, pick_configuration(results, budget_ms) raised {type(error).__name__}: {error}",
                          "It gets the table and the budget as arguments; read the error above.") from None
    if isinstance(choice, (pd.Series, pd.DataFrame)):
        raise CheckFailed(f"pick_configuration returned a {type(choice).__name__} (a row or rows of the table), not "
                          "a row label.", "Return the label that names the row, as the table shows it on the left.")
    if isinstance(choice, (list, tuple, set, dict, np.ndarray, pd.Index)):
        raise CheckFailed(f"On {where}, pick_configuration returned a {type(choice).__name__} ({_short(choice)}), not "
                          "one row label.", "Return the label itself, not a collection that holds it.")
    return choice


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _judge(results: pd.DataFrame, choice: object, budget_ms: float, where: str) -> None:
    """CheckFailed naming what a wrong ``choice`` on ``results`` did."""
    feasible = results[results.p95_ms <= budget_ms]
    clean = feasible[feasible.errors == 0] if "errors" in feasible else feasible
    # The right answers: the best row within budget, or (stricter) the best without failed requests.
    right = {feasible.throughput_rps.idxmax() if not feasible.empty else None,
             clean.throughput_rps.idxmax() if not clean.empty else None}
    if _is_right(choice, right):
        return
    on = f"On {where}, with a {budget_ms:.0f} ms budget"
    if feasible.empty:
        raise CheckFailed(f"{on}, no row meets the budget, and pick_configuration returned {choice!r}.",
                          "Read the exercise again for what to return when no row qualifies.")
    if choice is None:
        raise CheckFailed(f"{on}, pick_configuration returned None, but {len(feasible)} row(s) meet the budget.",
                          "None is for a table in which no row meets the budget.")
    position = isinstance(choice, (int, np.integer)) and not isinstance(choice, bool)
    positions = {results.index.get_loc(label) for label in right if label is not None}
    positions |= {feasible.index.get_loc(label) for label in right if label in feasible.index}
    if position and int(choice) in positions or (choice not in results.index and position
                                                  and 0 <= choice < len(results)):
        raise CheckFailed(f"{on}, pick_configuration returned {choice!r}: a position in the table, not one of its "
                          f"row labels ({list(results.index)}).",
                          "Return the row's label, as the table shows it on the left.")
    if not _is_label(choice, results):
        raise CheckFailed(f"{on}, pick_configuration returned {choice!r}, which is not a row label of the table.",
                          "Return the row's label, as the table shows it on the left.")
    row = results.loc[choice]
    if not row.p95_ms <= budget_ms:
        by_p50 = results[results.p50_ms <= budget_ms] if "p50_ms" in results else results.iloc[0:0]
        median = " (its p50 is within it: the budget is on the p95)" \
            if not by_p50.empty and by_p50.throughput_rps.idxmax() == choice else ""
        p95 = f"{row.p95_ms:.0f} ms"
        if row.p95_ms - budget_ms < 1:  # a p95 rounded or cut to whole milliseconds looks within
            p95, median = f"{row.p95_ms:.1f} ms", " by less than a millisecond"
        raise CheckFailed(f"{on}, pick_configuration chose row {choice} ({row.configuration}), whose p95 is "
                          f"{p95}, over the {budget_ms:.0f} ms budget{median}.",
                          "Only rows whose p95_ms is within budget_ms qualify.")
    better = [label for label in right if label is not None and label != choice]
    best = better[0]
    lowest = " It has the lowest p95, which is not what the budget asks for." \
        if results.p95_ms.idxmin() == choice else ""
    if results.p95_ms[best] == budget_ms:
        lowest += f" Row {best}'s p95 is the budget itself: it is within the budget."
    raise CheckFailed(f"{on}, pick_configuration chose row {choice}. Row {best} also meets the budget and serves "
                      f"more requests per second ({results.throughput_rps[best]:.1f} vs "
                      f"{row.throughput_rps:.1f}).{lowest}",
                      "Among the rows within budget, the one with the highest throughput wins.")


def _is_right(choice: object, right: set) -> bool:
    try:
        return choice in right
    except TypeError:  # an unhashable answer (a list, a dict)
        return False


def _is_label(choice: object, results: pd.DataFrame) -> bool:
    try:
        return choice in results.index
    except TypeError:
        return False


def drawn_table(like: pd.DataFrame, rng: np.random.Generator, on_budget: bool = False,
                empty: bool = False, budget: float | None = None,
                just_over: bool = False) -> tuple[pd.DataFrame, float]:
    """A table with the columns of ``like`` (so a stricter function that reads ``errors`` works)
    and a budget, drawn so that the plausible wrong picks each name another row than the right
    one: the lowest p95, the highest p95 within budget, the fastest row (over budget, with a p50
    within it, and just over it where the right row is not on it), a slower row within budget;
    with ``on_budget`` the right row's p95 is the budget itself ("within" includes it). With
    ``empty``, no row meets the budget (the answer is None). ``budget``: the table's budget
    (drawn when None). With ``just_over``, a row faster than the right one is over the budget by less
    than half a millisecond (a p95 rounded or cut to whole milliseconds before the comparison
    takes it). Labels are drawn too."""
    import pandas as pd

    budget = float(budget if budget is not None else rng.integers(4, 16) * 50)
    best = float(rng.uniform(12, 30))
    right = budget * rng.uniform(0.6, 0.95)
    if budget >= 1000 and 0.6 * budget < 1000:
        right = float(rng.uniform(0.6 * budget, 999.0))  # fewer digits than the budget: text compares otherwise
    # The fastest row is just over the budget (by 2-8 %: a budget read with a tolerance takes it)
    # where the right row is not on the budget, well over it where it is.
    over = rng.uniform(1.2, 2.0) if on_budget else rng.uniform(1.02, 1.08)
    rows = [  # (p95, p50, throughput)
        (budget if on_budget else right, budget * 0.4, best),  # the right one
        (budget * over, budget * rng.uniform(0.5, 0.9), best * rng.uniform(1.3, 2.0)),  # fastest
        (budget * rng.uniform(0.1, 0.3), budget * 0.05, best * rng.uniform(0.3, 0.6)),  # lowest p95
        (budget * rng.uniform(0.4, 0.55), budget * 0.2, best * rng.uniform(0.65, 0.9)),  # within, slower
    ]
    if not on_budget:  # within, closer to the budget than the right row and slower: the highest p95 within
        rows.append((float(rng.uniform(right, budget)), budget * 0.3, best * rng.uniform(0.4, 0.8)))
    if just_over and not (on_budget or empty):
        rows.append((budget + float(rng.uniform(0.1, 0.4)), budget * 0.45, best * rng.uniform(1.1, 1.25)))
    if empty:
        rows = [(budget * rng.uniform(1.1, 2.0), budget * 0.5, throughput) for _, _, throughput in rows]
    order = [int(index) for index in rng.permutation(len(rows)) if index != 0]
    # The right row first (on the budget) or last among the rows: "the first row within the
    # budget" and "the last" each name another row on one of the tables.
    order = [0] + order if on_budget else order + [0]
    if like.empty:
        table = pd.DataFrame(columns=like.columns, index=range(len(rows)))
    else:
        table = like.iloc[[index % len(like) for index in range(len(rows))]].copy()
    table.index = pd.Index([int(label) for label in rng.choice(np.arange(10, 1000), len(rows), replace=False)])
    table["configuration"] = [f"config {chr(ord('a') + index)}" for index in range(len(rows))]
    table["p95_ms"] = [round(rows[index][0], 1) for index in order]
    if "p50_ms" in table:
        table["p50_ms"] = [round(rows[index][1], 1) for index in order]
    table["throughput_rps"] = [round(rows[index][2], 1) for index in order]
    if "errors" in table:
        table["errors"] = 0
    return table, budget


def _same_row_under_other_labels(results: pd.DataFrame, pick: Pick, budget_ms: float, choice: object) -> None:
    """``pick`` on the same table with other row labels (drawn per call) must name the same
    row: a position, or a label written into the function, names another one. (A quick
    sweep's table is labelled 0, 1, 2, ..., where a position and a label coincide.)"""
    import pandas as pd

    labels = [int(label) for label in np.random.default_rng().choice(np.arange(100, 1000), len(results), replace=False)]
    relabelled = results.copy()
    relabelled.index = pd.Index(labels)
    expected = None if choice is None else labels[results.index.get_loc(choice)]
    try:
        again = pick(relabelled, budget_ms)
    except Exception as error:
        raise CheckFailed(f"On your table with other row labels pick_configuration raised {type(error).__name__}: "
                          f"{error}", "It must work whatever the table's row labels are.") from None
    if isinstance(again, (pd.Series, pd.DataFrame)) or again != expected:
        raise CheckFailed(f"On your table with other row labels ({labels}), pick_configuration returned "
                          f"{again!r}, not the label of the same row ({expected!r}): it returns a position or a "
                          "value fixed in the code, not the label of the row it chose.",
                          "Take the label from the table it is given, as the table shows it on the left.")


def sweep_for_grading(rng: np.random.Generator | None = None) -> pd.DataFrame:
    """What notebook 05's sweep cell makes when graded, in its place (the sweep measures for
    minutes and no point depends on its numbers): the sweep's columns and configurations at 8
    callers, with numbers drawn like a measured run's, in which the row that meets the
    notebook's budget (the median p95 rounded up to 50 ms) with the best throughput is neither
    the fastest, nor the lowest p95, nor the best by p50. The check then grades the function
    on it and on the tables it draws, as at home."""
    import pandas as pd

    from labkit.measure.panel import describe

    rng = rng or np.random.default_rng()
    lowest = float(rng.uniform(150, 250))
    p95 = [lowest, lowest + rng.uniform(100, 200)]  # within the budget
    p95 += [p95[1] + rng.uniform(150, 300)]  # over it: the budget is at most halfway between 2 and 3
    p95 += [p95[2] + rng.uniform(50, 200)]  # the fastest, well over it
    slowest = float(rng.uniform(8, 15))
    throughput = [slowest, slowest * rng.uniform(1.4, 1.8), slowest * rng.uniform(1.2, 1.35),
                  slowest * rng.uniform(2.0, 2.5)]
    budget = float(np.ceil(np.median(p95) / 50) * 50)
    p50 = [value * rng.uniform(0.4, 0.7) for value in p95[:3]] + [budget * rng.uniform(0.6, 0.9)]
    order = [int(index) for index in rng.permutation(4)]  # which configuration gets which numbers
    rows = []
    for position, (workers, size, wait) in enumerate(((1, 1, 0.0), (1, 8, 0.01), (2, 1, 0.0), (2, 8, 0.01))):
        index = order[position]
        settings = {"parallel_workers": workers, "max_batch_size": size, "max_batch_time": wait}
        seconds = 6.0
        rows.append({"configuration": describe(settings), **settings, "payload": "jpeg", "concurrency": 8,
                     "requests": int(throughput[index] * seconds), "errors": 0, "seconds": seconds,
                     "throughput_rps": round(throughput[index], 1), "images_per_s": round(throughput[index], 1),
                     "p50_ms": round(p50[index], 1), "p95_ms": round(p95[index], 1),
                     "p99_ms": round(p95[index] * 1.1, 1), "transport": "rest",
                     "avg_batch": round(float(rng.uniform(2, 4)), 1) if size > 1 else 1.0})
    return pd.DataFrame(rows)
