"""The reference the checks and tests compare answers with: TinyViT in this process, through
the service's own ``load()`` and ``classify()`` (``labkit.model.service``), and one ranking
of the best labels (``best_labels``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from labkit.paths import DEFAULT_CHECKPOINT, PathLike


def best_labels(probabilities: np.ndarray, k: int, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(labels ``[N, k]``, scores ``[N, k]``) of each row, best first (ties: lower index)."""
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return np.asarray(names, dtype=object)[top], np.take_along_axis(probabilities, top, axis=1)


class InProcessModel:
    """The lab's service loaded here on a checkpoint: same preprocessing, same forward."""

    def __init__(self, path: PathLike = DEFAULT_CHECKPOINT):
        from labkit.model.service import loaded_service

        self.service = loaded_service(path)
        self.model, self.transform = self.service.model, self.service.transform

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, 21841]`` for a list of uint8 ``[H, W, 3]`` images."""
        return self.service.classify(list(images))

    def best_labels(self, images: Sequence[np.ndarray], k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(labels ``[N, k]``, scores ``[N, k]``), best first."""
        from labkit.model.weights import labels

        return best_labels(self.probabilities(images), k, labels())


@lru_cache(maxsize=2)
def in_process_model(path: PathLike = DEFAULT_CHECKPOINT) -> InProcessModel:
    """A cached :class:`InProcessModel` for ``path``."""
    return InProcessModel(path)
