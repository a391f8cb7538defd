"""The solution notebooks' exercise cells, as the files they write."""

import nbformat

from labkit.instructor.build import SOLUTIONS


def solution_cell(notebook: str, grade_id: str) -> str:
    cells = nbformat.read(SOLUTIONS / notebook, as_version=4).cells
    return next(cell.source for cell in cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def written(cell: str) -> str:
    """The file a %%writefile cell writes."""
    assert cell.startswith("%%writefile ")
    return cell.split("\n", 1)[1] + "\n"


def mutate(text: str, old: str, new: str) -> str:
    """``text`` (a solution) with ``old`` replaced: a mistake made from it. Fails when the
    solution no longer holds ``old`` (a test that mutates code asserts the text it replaces)."""
    assert old in text, f"the solution no longer contains {old!r}"
    return text.replace(old, new)
