"""Hidden checks: run only when an instructor grades (nbgrader keeps them out of the
student notebooks, and the hand-out leaves this module out). They test what the visible
checks do not: concurrent callers under adaptive batching, and a function on tables and
budgets the student has not seen, so an answer fitted to the visible checks fails here.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Callable

from . import weights
from .checks import CheckFailed, ask_top5, check_same_labels, check_shapes, check_images, passed
from .client import encode_jpeg, files_request, load_image
from .paths import PathLike
from .reference import in_process_model

if TYPE_CHECKING:
    import pandas as pd

    from .server import ModelServer


def top5_under_adaptive_batching(server: ModelServer, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT,
                                 callers: int = 8) -> None:
    """Load the service again with adaptive batching (same process, MLServer's model
    repository API) and send concurrent requests of 1 or 2 images: every caller must get
    exactly its own rows (label sets checked, not order)."""
    from concurrent.futures import ThreadPoolExecutor

    server.reload(max_batch_size=callers, max_batch_time=0.1)
    files = [encode_jpeg(image) for _, image in check_images()]
    groups = [[files[index % 4]] if index % 2 == 0 else [files[index % 4], files[(index + 1) % 4]]
              for index in range(callers)]
    with ThreadPoolExecutor(len(groups)) as pool:
        answers = list(pool.map(lambda group: ask_top5(server, files_request(group), "concurrent requests"), groups))
    reference = in_process_model(checkpoint)
    for group, (labels, scores) in zip(groups, answers):
        check_shapes(labels, scores, images=len(group))
        check_same_labels(labels, reference.top_k([load_image(io.BytesIO(data)) for data in group])[0])
    passed(f"{len(groups)} concurrent callers under adaptive batching each got their own rows")


def pick_configuration_function(pick: Callable[[pd.DataFrame, float], object]) -> None:
    """Notebook 05 (hidden): ``pick(results, budget_ms)`` on tables it has not seen."""
    import pandas as pd

    table = pd.DataFrame({"configuration": ["a", "b", "c", "d"], "concurrency": [8, 8, 8, 8],
                          "throughput_rps": [10.0, 30.0, 20.0, 25.0], "p95_ms": [100.0, 900.0, 300.0, 500.0]},
                         index=[10, 11, 12, 13])
    for budget, expected in ((1000, 11), (600, 13), (400, 12), (150, 10), (50, None)):
        got = pick(table, budget)
        if got != expected:
            raise CheckFailed(f"With a {budget} ms budget pick_configuration returned {got!r}; "
                              f"the right row is {expected!r}.",
                              "Keep the rows with p95_ms <= budget_ms; return the label with the highest "
                              "throughput_rps among them, or None when none is left.")
    passed("pick_configuration picks the best row within budget on other tables too")
