"""labkit.instructor.feedback: a hidden check's cell on a feedback page shows its verdict in
general terms, never its code or its own message (in process; the real pages are read in
tests/instructor/test_grading.py)."""

import nbformat

from labkit.instructor.feedback import HideHiddenChecks

HIDDEN_CELL = ("# When your notebook is graded, this cell also tries pick_configuration on other tables.\n"
               "### BEGIN HIDDEN TESTS\nfrom labkit.instructor import hidden_checks\n\n"
               "hidden_checks.pick_configuration_function(pick_configuration, at_8)\n### END HIDDEN TESTS")


def cell(outputs):
    code = nbformat.v4.new_code_cell(HIDDEN_CELL, outputs=outputs)
    code.metadata["nbgrader"] = {"grade": True, "grade_id": "scaling-function-check", "points": 2}
    return code


def test_a_failed_hidden_check_shows_its_mistake_in_general_terms_only():
    error = nbformat.v4.new_output("error", ename="CheckFailed", evalue="On another table with a 600 ms budget "
                                   "pick_configuration returned 12; the right row is 34.", traceback=["..."])
    shown, _ = HideHiddenChecks().preprocess_cell(cell([error]), {}, 0)
    assert "hidden_checks" not in shown.source and "BEGIN HIDDEN TESTS" not in shown.source
    assert shown.source.startswith("# When your notebook is graded")
    assert [output.text for output in shown.outputs] == [
        "✘ This hidden check failed: pick_configuration chose another row than the right one on tables and "
        "budgets you have not seen.\n"]
    assert shown.metadata["nbgrader"]["points"] == 2


def test_a_passed_hidden_check_says_so_and_other_cells_are_left_alone():
    passed = nbformat.v4.new_output("stream", name="stdout", text="✔ pick_configuration picks the best row\n")
    shown, _ = HideHiddenChecks().preprocess_cell(cell([passed]), {}, 0)
    assert [output.text for output in shown.outputs] == ["✔ This hidden check passed.\n"]
    visible = nbformat.v4.new_code_cell("checks.scaling_choice(at_8, pick_configuration, budget_ms)")
    assert HideHiddenChecks().preprocess_cell(visible, {}, 0)[0] is visible
