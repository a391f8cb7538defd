"""labkit.measure.scaling's plot: one bar pair per row of the table (no server needed)."""

import matplotlib
import pandas as pd

from labkit.measure.scaling import plot_rows

matplotlib.use("Agg")


def test_two_rows_that_differ_only_in_payload_get_a_bar_pair_each():
    # Before: bars were placed by their label (configuration and concurrency), so the second
    # row drew over the first: throughput from one run, p95 from the other, in one pair.
    rows = pd.DataFrame({"configuration": ["1 worker", "1 worker"], "concurrency": [8, 8],
                         "payload": ["jpeg", "pixels"], "throughput_rps": [12.0, 7.0], "p95_ms": [700.0, 1100.0]})
    figure = plot_rows(rows)
    left, right = figure.axes
    assert [bar.get_width() for bar in left.patches] == [12.0, 7.0]
    assert [bar.get_width() for bar in right.patches] == [700.0, 1100.0]
    assert len({bar.get_y() for bar in left.patches}) == 2, "two rows, two positions"
    assert [tick.get_text() for tick in left.get_yticklabels()] == ["1 worker\nC=8, jpeg", "1 worker\nC=8, pixels"]
