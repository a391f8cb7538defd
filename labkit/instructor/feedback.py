"""What a student's feedback page shows of a hidden check: its points and, when it failed,
the mistake in general terms; never its code, its data or its own message (which could name
the hidden tables' budgets and right rows). nbgrader's feedback renders the autograded
notebook, in which the hidden tests are back (a known nbgrader complaint):
:class:`HideHiddenChecks` runs in ``nbgrader generate_feedback`` after the grades are read
(``labkit.instructor.build.set_up_course`` configures it)."""

from __future__ import annotations

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# Each hidden check's mistake in general terms (by the cell's grade_id).
IN_GENERAL = {
    "top5-batching-check": "under adaptive batching, concurrent callers did not each get their own rows, labels "
                           "and scores.",
    "scaling-function-check": "pick_configuration chose another row than the right one on tables and budgets "
                              "you have not seen.",
}
FALLBACK = "your code did not do what the exercise asks on inputs you have not seen."


class HideHiddenChecks(NbGraderPreprocessor):
    """Replace each hidden check's code and output with its verdict in general terms."""

    def preprocess_cell(self, cell: nbformat.NotebookNode, resources: dict, index: int) -> tuple:
        if cell.cell_type != "code" or BEGIN not in cell.source:
            return cell, resources
        lines, inside = [], False
        for line in cell.source.split("\n"):
            if BEGIN in line:
                inside = True
                lines.append("# (a hidden check: its code stays with the instructor)")
            elif END in line:
                inside = False
            elif not inside:
                lines.append(line)
        cell.source = "\n".join(lines)
        failed = any(output.get("output_type") == "error" for output in cell.get("outputs", []))
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        text = (f"✘ This hidden check failed: {IN_GENERAL.get(grade_id, FALLBACK)}\n" if failed else
                "✔ This hidden check passed.\n")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        return cell, resources
