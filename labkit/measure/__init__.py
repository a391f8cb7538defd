"""Measuring a running server: the closed-loop load generator (``loadgen``), ``/metrics``
(``metrics``), the scaling lab and its panel (``scaling``), concurrent callers judged one by
one (``callers``), the lab's committed benchmark record read back (``record``), how busy the
machine was meanwhile (``machine``)."""

from typing import TYPE_CHECKING

from labkit.faces import lazy_face

# The face: each name is imported from its module when first read (labkit/faces.py).
_WHERE = {
    "ScalingLab": "scaling",
    "measure": "scaling",
    "interleaved": "compare",
    "side_by_side": "compare",
    "machine_note": "compare",
    "scaling_findings": "compare",
    "OtherLoad": "machine",
    "payload_body": "loadgen",
    "run_load": "loadgen",
    "judge_concurrent_callers": "callers",
    "pixels_body": "callers",
    "metrics": "metrics",
    "record": "record",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_face(__name__, _WHERE)

if TYPE_CHECKING:  # what the names are, for readers and mypy
    from labkit.measure import metrics, record  # noqa: F401 (names of the face)
    from labkit.measure.callers import judge_concurrent_callers, pixels_body  # noqa: F401 (names of the face)
    from labkit.measure.compare import interleaved, machine_note, scaling_findings, side_by_side  # noqa: F401 (names of the face)
    from labkit.measure.loadgen import payload_body, run_load  # noqa: F401 (names of the face)
    from labkit.measure.machine import OtherLoad  # noqa: F401 (names of the face)
    from labkit.measure.scaling import ScalingLab, measure  # noqa: F401 (names of the face)
