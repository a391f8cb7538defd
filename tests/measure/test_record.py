"""labkit.measure.record: the committed benchmark record read back for notebook 05's plot."""

import json

import matplotlib
import pytest

from labkit.measure import record

matplotlib.use("Agg")


def test_the_latest_record_is_the_newest_full_run_with_a_breakdown(tmp_path):
    full = {"mode": "full", "breakdown": [{"configuration": "x"}]}
    (tmp_path / "2026-12-01.json").write_text(json.dumps(full))
    (tmp_path / "2026-12-02.json").write_text(json.dumps({"mode": "quick", "breakdown": [{"configuration": "x"}]}))
    (tmp_path / "2026-12-03.json").write_text(json.dumps({"mode": "full"}))  # before the breakdown was recorded
    (tmp_path / "breakdown-2026-12-04.json").write_text(json.dumps(full))  # another benchmark's record
    assert record.latest_record(tmp_path).name == "2026-12-01.json"
    with pytest.raises(FileNotFoundError, match="make bench"):
        record.latest_record(tmp_path / "nothing")


def test_the_committed_record_gives_a_stacked_bar_per_row_that_adds_up():
    path = record.latest_record()
    rows = json.loads(path.read_text())["breakdown"]
    table = record.breakdown_table(path)
    assert len(table) == len(rows) >= 4
    # The stages of a request add up to what its client waited (each residual is a difference).
    for row in table.itertuples():
        stages = table.loc[row.Index, list(record.STAGES)].fillna(0).sum()
        assert stages == pytest.approx(row.client_mean_ms, abs=0.5), row
    assert table["HTTP handling"].isna().tolist() == [row["transport"] == "grpc" for row in rows]
    figure = record.plot_breakdown(table)
    [axes] = figure.axes
    assert len(axes.patches) == len(record.STAGES) * len(table)
    assert [text.get_text() for text in axes.get_legend().get_texts()] == list(record.STAGES)
