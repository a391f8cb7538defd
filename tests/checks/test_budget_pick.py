"""labkit.checks.budget_pick: notebook 05's pick_configuration, its visible check and the hidden one, on
tables made here (no server)."""

import pytest
from labkit import checks
from labkit.instructor import hidden_checks


def solution_pick(results, budget_ms):
    within = results[results.p95_ms <= budget_ms]
    return None if within.empty else within.throughput_rps.idxmax()


def strict(results, budget_ms):
    # Correct and stricter than the solution: rows with failed requests do not qualify.
    ok = results.query("p95_ms <= @budget_ms and errors == 0")
    return ok.throughput_rps.idxmax() if len(ok) else None


def scaling_table():
    import pandas as pd

    return pd.DataFrame({"configuration": ["w1", "w2", "w2+b"], "concurrency": [8, 8, 8],
                         "throughput_rps": [10.0, 17.0, 12.0], "p95_ms": [800.0, 600.0, 300.0]})


def returns(value):
    """A pick that names the row at position ``value`` by its label (or returns ``value``
    itself when it is no position: None, an unknown label)."""
    def pick(results, budget_ms):
        return results.index[value] if isinstance(value, int) and 0 <= value < len(results) else value
    return pick


def test_a_position_or_a_constant_fails_though_the_table_is_labelled_by_position():
    # A quick sweep's table: labels 0, 1, 2 are positions as well.
    def position(results, budget_ms):
        fits = results[results.p95_ms <= budget_ms]
        return int(fits.throughput_rps.to_numpy().argmax())

    # Within 900 ms every row qualifies: the best row's position is its label.
    with pytest.raises(checks.CheckFailed, match="a value fixed in the code, or a position"):
        checks.scaling_choice(scaling_table(), position, budget_ms=900)
    with pytest.raises(checks.CheckFailed, match="not the label of the same row"):
        checks.scaling_choice(scaling_table(), lambda results, budget_ms: 1, budget_ms=700)


def test_scaling_choice_explains_over_budget_and_not_best():
    table = scaling_table()
    checks.scaling_choice(table, solution_pick, budget_ms=700)
    with pytest.raises(checks.CheckFailed, match="over the 500 ms budget"):
        checks.scaling_choice(table, returns(1), budget_ms=500)
    with pytest.raises(checks.CheckFailed, match="Row 1 also meets the budget"):
        checks.scaling_choice(table, returns(2), budget_ms=700)
    with pytest.raises(checks.CheckFailed, match="not a row label"):
        checks.scaling_choice(table, returns(7), budget_ms=700)
    with pytest.raises(checks.CheckFailed, match="but 3 row"):
        checks.scaling_choice(table, returns(None), budget_ms=900)
    checks.scaling_choice(table, solution_pick, budget_ms=100)


def test_scaling_choice_names_an_untouched_function_and_a_position():
    def untouched(results, budget_ms):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="not written yet"):
        checks.scaling_choice(scaling_table(), untouched, budget_ms=700)
    relabelled = scaling_table().set_axis([20, 21, 22])
    with pytest.raises(checks.CheckFailed, match="a position in the table, not one of its row labels"):
        checks.scaling_choice(relabelled, lambda results, budget_ms: 1, budget_ms=700)


def test_a_stricter_correct_pick_passes_the_visible_and_the_hidden_check():
    table = scaling_table().assign(errors=[0, 3, 0], requests=[80, 120, 90])
    checks.scaling_choice(table, strict, budget_ms=700)  # row 1 is faster but failed requests
    hidden_checks.pick_configuration_function(strict, table)


def test_scaling_choice_names_a_row_returned_instead_of_its_label_and_a_strict_none():
    table = scaling_table().assign(errors=[0, 2, 2])
    with pytest.raises(checks.CheckFailed, match="returned a Series"):
        checks.scaling_choice(table, lambda results, budget_ms: results.loc[1], budget_ms=700)
    with pytest.raises(checks.CheckFailed, match="returned a Series"):
        hidden_checks.pick_configuration_function(lambda results, budget_ms: results.iloc[0], table)
    # Every row within budget had failed requests: the stricter pick's None is right.
    checks.scaling_choice(table, strict, budget_ms=650)


def test_hidden_scaling_check_tells_within_from_below_the_budget():
    def below(results, budget_ms):
        within = results[results.p95_ms < budget_ms]
        return None if within.empty else within.throughput_rps.idxmax()

    with pytest.raises(checks.CheckFailed, match="500 ms budget") as caught:
        hidden_checks.pick_configuration_function(below, scaling_table())
    # It reads only its arguments (helper session 5: told to use "nothing from the notebook").
    assert "nothing from the notebook" not in caught.value.hint and "within the budget" in caught.value.hint


def test_hidden_scaling_check_catches_a_hard_coded_or_budget_blind_pick():
    def correct(results, budget_ms):
        within = results[results.p95_ms <= budget_ms]
        return None if within.empty else within.throughput_rps.idxmax()

    table = scaling_table()
    hidden_checks.pick_configuration_function(correct, table)
    with pytest.raises(checks.CheckFailed, match=r"returned 1; the right row is \d+"):
        hidden_checks.pick_configuration_function(lambda results, budget_ms: 1, table)
    notebook_table = table  # a function that reads the notebook's own table, not its argument
    with pytest.raises(checks.CheckFailed, match="nothing from the notebook"):
        hidden_checks.pick_configuration_function(
            lambda results, budget_ms: correct(notebook_table, budget_ms), table)
    with pytest.raises(checks.CheckFailed, match="budget"):
        hidden_checks.pick_configuration_function(lambda results, budget_ms: results.throughput_rps.idxmax(), table)


def test_an_untouched_pick_earns_no_hidden_points_and_a_wrong_one_is_charged_once():
    # bob's untouched hand-in got the hidden check's 2 points once the visible check's failure
    # counted for both: "not written" is no mistake to count once.
    def untouched(results, budget_ms):
        raise NotImplementedError()

    def lowest(results, budget_ms):
        within = results[results.p95_ms <= budget_ms]
        return None if within.empty else within.p95_ms.idxmin()

    table = scaling_table()
    for pick, hidden_passes in ((untouched, False), (lowest, True)):
        with pytest.raises(checks.CheckFailed):
            checks.scaling_choice(table, pick, budget_ms=700)
        if hidden_passes:
            hidden_checks.pick_configuration_function(pick, table)
        else:
            with pytest.raises(checks.CheckFailed):
                hidden_checks.pick_configuration_function(pick, table)
