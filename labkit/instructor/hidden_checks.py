"""Hidden checks: run only when an instructor grades (nbgrader keeps them out of the
student notebooks, and the hand-out leaves this module out). Each has a visible twin the
student can run first (what grading catches, the student can see): concurrent callers under
adaptive batching (:func:`labkit.checks.top5_under_batching`, on images drawn anew), and a
function on tables and budgets the student has not seen (beside the tables
:func:`labkit.checks.scaling_choice` draws).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from labkit.model import weights
from labkit.checks.feedback import CheckFailed, passed
from labkit.checks.budget_pick import agreeing_columns, already_failed, notebook_data_read
from labkit.checks.live import top5_under_batching
from labkit.paths import PathLike

if TYPE_CHECKING:
    import pandas as pd

    from labkit.serving.server import ModelServer


def top5_under_adaptive_batching(server: ModelServer | PathLike, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT,
                                 callers: int = 8) -> None:
    """Notebook 03 (hidden, 2 points): the visible self-check the student can run,
    :func:`labkit.checks.top5_under_batching`, on images drawn anew for the grade."""
    top5_under_batching(server, checkpoint, callers)


def pick_configuration_function(pick: Callable[[pd.DataFrame, float], object], like: pd.DataFrame) -> None:
    """Notebook 05 (hidden): ``pick(results, budget_ms)`` on tables it has not seen, with the
    columns of the student's own table ``like`` (so a stricter correct function that also
    reads, say, ``errors`` works here too), no failed requests and other row labels."""
    import numpy as np
    import pandas as pd

    if already_failed(pick):
        # The visible check above already took this function's points: one mistake costs once.
        passed("pick_configuration's mistake is counted once, in the check above")
        return
    template = like.iloc[[index % len(like) for index in range(4)]].copy()
    labels = [int(label) for label in np.random.default_rng().choice(np.arange(10, 100), 4, replace=False)]
    template.index = pd.Index(labels)  # drawn per run: no list of answers to look up
    template["configuration"] = ["a", "b", "c", "d"]
    template["throughput_rps"] = [10.0, 30.0, 20.0, 25.0]
    template["p95_ms"] = [100.0, 900.0, 300.0, 500.0]
    if "p50_ms" in template:
        template["p50_ms"] = [60.0, 400.0, 200.0, 300.0]
    template = agreeing_columns(template, like, np.random.default_rng())
    # 500 is a row's own p95: within budget ("within" includes the bound).
    for budget, position in ((1000, 1), (600, 3), (500, 3), (400, 2), (150, 0), (50, None)):
        expected = None if position is None else labels[position]
        try:
            got = pick(template.copy(), budget)
        except Exception as error:
            raise CheckFailed(f"On another table with a {budget} ms budget pick_configuration raised "
                              f"{type(error).__name__}: {error}",
                              "It must work on any table with these columns and any budget.") from None
        if isinstance(got, (pd.Series, pd.DataFrame, pd.Index, np.ndarray, list, tuple, set, dict)):
            raise CheckFailed(f"pick_configuration returned a {type(got).__name__}, not a row label.",
                              "Return the label that names the row.")
        if got != expected:
            raise CheckFailed(f"On another table with a {budget} ms budget pick_configuration returned {got!r}; "
                              f"the right row is {expected!r}.",
                              "Use the table and the budget it is given, nothing from the notebook; None when "
                              "no row is within budget." if notebook_data_read(pick) else
                              "Among the rows whose p95 is within the budget, the one with the highest "
                              "throughput; None when no row is within budget.")
    passed("pick_configuration picks the best row within budget on other tables too")
