"""The row-by-row comparison of top-k answers: a tie at the boundary of the top k may end the
row either way (the reference runs on ONNX Runtime, about 1e-6 from torch); anything else may not."""

import numpy as np
import pytest

from labkit.checks.common import CheckFailed, compare_best_labels
from labkit.model.weights import labels as class_names

NAMES = class_names()[:6]
SCORES = np.array([[0.30, 0.20, 0.10, 0.05, 0.0400000, 0.0399999]])  # the 5th and 6th tie (2.5e-6 apart)


def expected(scores: np.ndarray = SCORES) -> tuple[np.ndarray, np.ndarray]:
    return np.array([NAMES], dtype=object), scores


def test_the_next_best_may_end_the_row_where_it_ties_the_kth():
    answer = np.array([NAMES[:4] + (NAMES[5],)], dtype=object)
    compare_best_labels(answer, SCORES[:, [0, 1, 2, 3, 5]], *expected(), k=5)
    compare_best_labels(np.array([NAMES[:5]], dtype=object), SCORES[:, :5], *expected(), k=5)


def test_the_next_best_may_not_end_the_row_where_it_does_not_tie():
    scores = SCORES.copy()
    scores[0, 5] = 0.03
    answer = np.array([NAMES[:4] + (NAMES[5],)], dtype=object)
    with pytest.raises(CheckFailed, match="not image 0's 5 best"):
        compare_best_labels(answer, scores[:, [0, 1, 2, 3, 5]], *expected(scores), k=5)


def test_a_tie_does_not_excuse_a_wrong_score():
    answer = np.array([NAMES[:4] + (NAMES[5],)], dtype=object)
    with pytest.raises(CheckFailed, match="scores are not"):
        compare_best_labels(answer, np.array([[0.30, 0.20, 0.10, 0.05, 0.02]]), *expected(), k=5)


def test_labels_moved_beside_the_models_scores_are_named_as_labels_out_of_order():
    # helper session 5: each row's labels sorted by name, the scores left best first, was told
    # "the labels are right but the scores are not".
    scores = np.array([[0.30, 0.20, 0.10, 0.05, 0.03, 0.01]])
    answer = np.array([sorted(NAMES[:5])], dtype=object)
    assert list(answer[0]) != list(NAMES[:5])
    with pytest.raises(CheckFailed, match="scores are the model's 5 best, best first, but its labels are in another "
                       "order") as caught:
        compare_best_labels(answer, scores[:, :5], *expected(scores), k=5)
    assert caught.value.kind == "order"
