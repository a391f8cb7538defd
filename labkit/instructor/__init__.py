"""The instructor's side, which the student hand-out leaves out as a whole folder: notebook
build and release (``notebooks``), nbgrader grading (``grading``), the hand-out itself
(``handout``) and the checks only grading runs (``hidden_checks``)."""
