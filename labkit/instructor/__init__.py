"""The instructor's side, which the student hand-out leaves out as a whole folder: notebook
build and release (``build``), nbgrader grading (``grading``), the hand-out itself
(``handout``) and the checks only grading runs (``hidden_checks``)."""

from typing import TYPE_CHECKING

from labkit.faces import lazy_face

# The face: each name is imported from its module when first read (labkit/faces.py).
_WHERE = {
    "hidden_checks": "hidden_checks",
    "grade": "grading",
    "release": "build",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_face(__name__, _WHERE)

if TYPE_CHECKING:  # what the names are, for readers and mypy
    from labkit.instructor import hidden_checks  # noqa: F401 (names of the face)
    from labkit.instructor.grading import grade  # noqa: F401 (names of the face)
    from labkit.instructor.build import release  # noqa: F401 (names of the face)
