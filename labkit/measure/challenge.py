"""A served model against its engine alone on the same machine: the ratio that says how much of the
engine's speed the server keeps (``benchmarks/serving.py``'s targets, and the graded performance
challenge of issue 41).

Each round measures, back to back, the engine in this process (decode, preprocess and forward at
its batch: nothing a server adds) and the server under its load, so both meet the same minute of
the machine, which drifts by tens of percent within minutes; the result is the median of the
rounds' ratios, with their spread and how much of the CPU other processes took. A round during
which others took more than ``BUSY`` of it is measured again rather than guessed from.
:func:`points` turns a ratio into a share of an exercise's points, with a band around each
threshold, so that a ratio measured near a threshold gets the same points twice.
"""

from __future__ import annotations

import io
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Hashable, Union

from labkit.client import load_image
from labkit.measure.machine import OtherLoad

# The share of the CPU other processes may take during a round before it is measured again: a
# busy core moves a PyTorch server's rate many times more than the engine's (make bench-shared).
BUSY = 0.25
# (ratio, share of the points from it): half the points from half the engine's speed, all from
# three quarters; the lab's tuned settings kept 0.89 of it (benchmarks/results/2026-12-06.md).
THRESHOLDS = ((0.5, 0.5), (0.75, 1.0))
# A ratio this close below a threshold counts as reaching it: rounds of the same service spread
# by a few percent, and the same hand-in must get the same points when graded again.
BAND = 0.05


def in_process_rate(classify: Callable[[list], object], jpeg: bytes, batch_size: int,
                    seconds: float) -> tuple[float, list[float]]:
    """Images per second of ``classify`` on batches of ``jpeg`` decoded for each call, for at least
    ``seconds`` (and one call), and the milliseconds of each call.

    Args:
        classify: the engine's ``classify(images) -> probabilities`` in this process.
        jpeg: one encoded image, decoded again for every image (as a server decodes each request).
        batch_size: images per call.
        seconds: how long to keep calling.
    """
    images, done = 0, list[float]()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or not done:
        begin = time.perf_counter()
        classify([load_image(io.BytesIO(jpeg)) for _ in range(batch_size)])
        done.append((time.perf_counter() - begin) * 1000)
        images += batch_size
    return images / (time.perf_counter() - started), done


@dataclass(frozen=True)
class Round:
    """One round: the engine alone and the server, in images per second, and the share of the CPU
    other processes took meanwhile."""

    limit_images_per_s: float
    served_images_per_s: float
    others_cpu_share: float
    # What the two measurements reported besides their rates (a latency, a scrape's means).
    details: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.served_images_per_s / self.limit_images_per_s


@dataclass(frozen=True)
class AgainstLimit:
    """The rounds kept (each quiet enough, or the last try of a busy one) and how many were
    measured again because the machine was busy."""

    rounds: tuple[Round, ...]
    measured_again: int

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios."""
        return statistics.median(round_.ratio for round_ in self.rounds)

    @property
    def spread(self) -> tuple[float, float]:
        return min(round_.ratio for round_ in self.rounds), max(round_.ratio for round_ in self.rounds)

    @property
    def busy(self) -> bool:
        """Whether a kept round was still too busy to grade fairly."""
        return any(round_.others_cpu_share > BUSY for round_ in self.rounds)


# A measurement: images per second, or images per second and what else it found out.
Measured = Union[float, tuple[float, dict]]


def _split(measured: Measured) -> tuple[float, dict]:
    return measured if isinstance(measured, tuple) else (measured, {})


def against_limit(limit: Callable[[], Measured], served: Callable[[], Measured], rounds: int = 3,
                  tries: int = 3, load: Callable[[], OtherLoad] = OtherLoad,
                  on_round: Callable[[int, Round], None] | None = None,
                  verdict: Callable[[Round], Hashable] | None = None,
                  on_again: Callable[[int, Round], None] | None = None) -> AgainstLimit:
    """``rounds`` rounds of ``limit()`` then ``served()``; a round during which other processes
    took more than ``BUSY`` of the CPU is measured again, up to ``tries`` times in all. With
    ``verdict``, the rounds stop as soon as more than half of ``rounds`` give one verdict (the
    points a round's numbers earn): the median of all the rounds would give it whatever the rest
    measured, and the median of the rounds kept gives it too when the verdict comes from numbers
    read against thresholds (each side of a threshold is an interval).

    Args:
        limit: measures the engine alone, in images per second (e.g. with :func:`in_process_rate`),
            or returns (images per second, details), the details kept in the round's ``details``.
        served: measures the server under its load, the same way.
        rounds: rounds kept.
        tries: measurements of one round at most, when the machine stays busy.
        load: what reads the others' share of the CPU over a round (:class:`OtherLoad`).
        on_round: called with each kept round's number (from 1) and the round, as it is kept (a
            notebook shows progress with it).
        on_again: called with the round's number and the try that is not kept, before it is
            measured again (seconds of a notebook's cell otherwise without a sign of life).
        verdict: what a round's numbers decide, each of them read against its own thresholds
            and monotone in it (a tuple of bands, one per number), or None to measure every round.

    Raises:
        ValueError: ``rounds`` or ``tries`` below 1, or a measurement of 0 images per second by
            the engine (nothing to compare with).
    """
    if rounds < 1 or tries < 1:
        raise ValueError("rounds and tries are at least 1")
    kept: list[Round] = []
    again = 0
    for _ in range(rounds):
        for attempt in range(tries):
            with load() as others:
                engine, limit_details = _split(limit())
                server, served_details = _split(served())
            if engine <= 0:
                raise ValueError("the engine alone served no image: nothing to compare the server with")
            measured = Round(engine, server, others.share, {**limit_details, **served_details})
            if others.share <= BUSY or attempt == tries - 1:
                break
            again += 1
            if on_again is not None:
                on_again(len(kept) + 1, measured)
        kept.append(measured)
        if on_round is not None:
            on_round(len(kept), measured)
        if verdict is not None and decided(kept, rounds, verdict):
            break
    return AgainstLimit(tuple(kept), again)


def decided(kept: list[Round], rounds: int, verdict: Callable[[Round], Hashable]) -> bool:
    """Whether every number of ``verdict`` has one band in more than half of ``rounds`` rounds
    among ``kept``: the median of ``rounds`` lies in the band that more than half of them share,
    so the rounds not measured yet cannot move it."""
    majority = rounds // 2 + 1
    verdicts = [verdict(round_) for round_ in kept]
    if len(verdicts) < majority:
        return False
    return all(max(Counter(bands).values()) >= majority for bands in zip(*verdicts))


def points(ratio: float, thresholds: tuple[tuple[float, float], ...] = THRESHOLDS, band: float = BAND) -> float:
    """The share of the points ``ratio`` earns: that of the highest threshold it reaches, where a
    ratio within ``band`` below a threshold reaches it; 0 below the first.

    Args:
        ratio: the server's images per second over the engine's alone.
        thresholds: (ratio, share of the points), in ascending order.
        band: how far below a threshold still reaches it.
    """
    earned = 0.0
    for threshold, share in thresholds:
        if ratio >= threshold - band:
            earned = share
    return earned
