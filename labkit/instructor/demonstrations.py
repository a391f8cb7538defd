"""What ``make grade`` does not run: the notebooks' demonstrations (measurements, sweeps,
panels, the engines' comparison, the export), which no point depends on.

A demonstration is marked in the notebook's source (``# %% demo``, see
:mod:`labkit.instructor.build`), optionally with a grading form that makes, without
measuring, the names later cells read (05's sweep table). Which cells to skip is read from the
solution notebooks (the assignment's source), never from the hand-in: a cell is skipped only
when the hand-in holds it under the same id with the source the student was given. A student
who changed a demonstration gets it run as written; no graded or exercise cell is ever
skipped. The skipped cell keeps its source in the graded notebook and its output says that it
was skipped, so the feedback page shows it.

``tests/instructor/test_demonstrations.py`` proves the rule statically over every notebook: no
name a demonstration defines is read by a cell that runs when graded.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Unicode

from labkit.instructor.build import NBVAL_MARKER

SKIPPED = "skipped while grading: a demonstration (no points depend on it)"
_STASH = "lab_skipped_source"


def demonstrations(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """{cell id: grading form} of the demonstrations of a solution notebook."""
    return {cell.id: cell.metadata["lab"].get("while_grading", "") for cell in notebook.cells
            if cell.cell_type == "code" and cell.metadata.get("lab", {}).get("demonstration")}


def _as_given(source: str) -> str:
    """A cell's source as the student was given it (the release drops nbval's markers)."""
    return NBVAL_MARKER.sub("", source).strip()


class SkipDemonstrations(Preprocessor):
    """Before the hand-in runs: each demonstration the student left as given runs its grading
    form instead (or nothing), with one line that says so."""

    source = Unicode("", help="the folder of the assignment's solution notebooks").tag(config=True)
    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled; nbgrader registers it by name

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[nbformat.NotebookNode, dict]:
        name = resources.get("unique_key") or resources["nbgrader"]["notebook"]
        master_file = Path(self.source) / f"{name}.ipynb"
        if not master_file.is_file():
            return nb, resources
        master = nbformat.read(master_file, as_version=4)
        given = {cell.id: _as_given(cell.source) for cell in master.cells}
        forms = demonstrations(master)
        for cell in nb.cells:
            form = forms.get(cell.get("id"))
            if (form is None or cell.cell_type != "code" or "nbgrader" in cell.metadata
                    or _as_given(cell.source) != given[cell.id]):
                continue
            cell.metadata[_STASH] = cell.source
            cell.source = f"print({SKIPPED!r})\n{form}"
        return nb, resources


class RestoreDemonstrations(Preprocessor):
    """After the hand-in ran: the skipped cells show the student's source again (their output
    says they were skipped)."""

    enabled = Bool(True)

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[nbformat.NotebookNode, dict]:
        for cell in nb.cells:
            if _STASH in cell.metadata:
                cell.source = cell.metadata.pop(_STASH)
        return nb, resources
