"""What a top-k answer's labels are when they are not the reference's names for its classes
(notebook 03): the names of the classes at an end of the list, names cut short, or other classes'
names beside the model's own scores. :func:`labkit.checks.feedback.compare_best_labels` names
the mistake from these."""

from __future__ import annotations

import numpy as np

from labkit.model import weights


def classes_at_an_end(row: np.ndarray) -> str:
    """"first 5" or "last 5" when the row's labels are the names of the first or the last classes
    of the list (in any order), else ""."""
    names = weights.labels()
    k = len(row)
    for where, end in (("first", names[:k]), ("last", names[-k:])):
        if sorted(map(str, row)) == sorted(end):
            return f"{where} {k}"
    return ""


def cut_short(labels: np.ndarray, expected: np.ndarray) -> tuple[str, str] | None:
    """(a label, the name it starts) when every label that differs from the reference's at its
    place is the start of that name."""
    pairs = [(str(given), str(name)) for given, name in zip(labels.ravel(), expected[:, :labels.shape[1]].ravel())
             if str(given) != str(name)] if labels.shape[0] == expected.shape[0] else []
    if pairs and all(given and name.startswith(given) for given, name in pairs):
        return pairs[0]
    return None


def scores_right_names_wrong(labels: np.ndarray, scores: np.ndarray, expected_labels: np.ndarray,
                             expected_scores: np.ndarray) -> str:
    """When the scores are the reference's top scores row by row and the labels are other classes'
    names: what the names are instead (", each the name of the class 1 after its own"), or "" (the
    labels fit, or the scores differ too)."""
    columns = labels.shape[1] if labels.ndim == 2 else 0
    if labels.shape != scores.shape or labels.shape[0] != expected_scores.shape[0] or columns == 0:
        return ""
    if not np.allclose(scores, expected_scores[:, :columns], rtol=1e-3, atol=1e-6):
        return ""
    if all(any(set(labels[row]) == set(expected_labels[other][:columns]) for other in range(len(labels)))
           for row in range(len(labels))):
        return ""  # each row whole, its own or another image's: named by the rows' own messages below
    if all(classes_at_an_end(labels[row]) for row in range(len(labels))):
        return ""  # positions of a sorted row: named below, with the ranking
    index = {name: position for position, name in reversed(list(enumerate(weights.labels())))}
    shifts = {index[str(given)] - index[str(name)] for given, name in
              zip(labels.ravel(), expected_labels[:, :columns].ravel()) if str(given) in index and str(name) in index}
    if len(shifts) == 1 and 0 not in shifts:
        shift = shifts.pop()
        return f", each the name of the class {abs(shift)} {'after' if shift > 0 else 'before'} its own in the list"
    wrong = [(row, str(label)) for row in range(len(labels)) for label in labels[row]
             if str(label) not in {str(name) for name in expected_labels[row][:columns]}]
    if all(any(label in {str(name) for name in expected_labels[other][:columns]}
               for other in range(len(labels)) if other != row) for row, label in wrong):
        # helper session 17: labels.T.reshape(N, 5) mixed the rows of a batch
        return f", some of them names of another image's {columns} best (row {wrong[0][0]} holds {wrong[0][1]!r})"
    return ", each another class's name"
