"""Hidden checks: run only when an instructor grades (nbgrader keeps them out of the
student notebooks, and the hand-out leaves this module out). They test what the visible
checks do not: concurrent callers under adaptive batching, and a function on tables and
budgets the student has not seen, so an answer fitted to the visible checks fails here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from labkit.model import weights
from labkit.checks.common import CheckFailed, check_shapes, compare_best_labels, distinct_images, passed
from labkit.checks.budget_pick import already_failed
from labkit.checks.live import ask_top5, service_server
from labkit.client import files_request
from labkit.paths import PathLike
from labkit.model.reference import reference_model

if TYPE_CHECKING:
    import pandas as pd

    from labkit.serving.server import ModelServer


def top5_under_adaptive_batching(server: ModelServer | PathLike, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT,
                                 callers: int = 8) -> None:
    """Load the service again with adaptive batching (same process, MLServer's model
    repository API) and send two rounds of concurrent requests of 1 or 2 images, each round
    with images drawn for it: every caller must get exactly its own rows, labels and scores
    (a service that answers every round as it answered the first, one merged batch, fails
    the second)."""
    from concurrent.futures import ThreadPoolExecutor

    server = service_server(server)
    server.reload(max_batch_size=callers, max_batch_time=0.1)
    groups = [[index % 4] if index % 2 == 0 else [index % 4, (index + 1) % 4] for index in range(callers)]
    for _ in range(2):
        _, images, files = distinct_images(4, checkpoint, jpeg=True)
        with ThreadPoolExecutor(len(groups)) as pool:
            answers = list(pool.map(lambda group: ask_top5(server, files_request([files[i] for i in group]),
                                                           "concurrent requests"), groups))
        expected_labels, expected_scores = reference_model(checkpoint).best_labels(images, 6)
        for group, (labels, scores) in zip(groups, answers):
            check_shapes(labels, scores, images=len(group))
            compare_best_labels(labels, scores, expected_labels[group], expected_scores[group],
                                what="rows of a caller's answer under adaptive batching", k=5)
    passed(f"2 rounds of {len(groups)} concurrent callers under adaptive batching, each caller got its own rows, "
           "labels and scores")


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
    if "errors" in template:
        template["errors"] = 0
    # 500 is a row's own p95: within budget ("within" includes the bound).
    for budget, position in ((1000, 1), (600, 3), (500, 3), (400, 2), (150, 0), (50, None)):
        expected = None if position is None else labels[position]
        try:
            got = pick(template.copy(), budget)
        except Exception as error:
            raise CheckFailed(f"On another table with a {budget} ms budget pick_configuration raised "
                              f"{type(error).__name__}: {error}",
                              "It must work on any table with these columns and any budget.") from None
        if isinstance(got, (pd.Series, pd.DataFrame)):
            raise CheckFailed(f"pick_configuration returned a {type(got).__name__}, not a row label.",
                              "Return the label that names the row.")
        if got != expected:
            raise CheckFailed(f"On another table with a {budget} ms budget pick_configuration returned {got!r}; "
                              f"the right row is {expected!r}.",
                              "Use the table and the budget it is given, nothing from the notebook; None when "
                              "no row is within budget.")
    passed("pick_configuration picks the best row within budget on other tables too")
