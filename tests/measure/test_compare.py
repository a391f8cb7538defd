"""labkit.measure.compare: interleaved rounds summed up by median, spread and ratio."""

import pandas as pd

from labkit.measure import interleaved, machine_note, scaling_findings, side_by_side


def test_rounds_are_taken_in_turn_and_summed_up_by_median_spread_and_ratio():
    order = []

    def measure_one(candidate):
        order.append(candidate)
        return {"throughput_rps": {"a": 10.0, "b": 25.0}[candidate] + len(order), "p95_ms": 100.0,
                "others_cpu_share": 0.05 * len(order)}

    rows = interleaved({"A": "a", "B": "b"}, measure_one, rounds=3)
    assert order == ["a", "b", "a", "b", "a", "b"]  # A, B, A, B: the same disturbances for both
    table = side_by_side(rows, baseline="A")
    assert table.loc["A", "rounds"] == 3 and table.loc["A", "throughput_rps"] == 13.0  # 11, 13, 15
    assert table.loc["B", "throughput_rps spread"] == "27.0-31.0"
    assert table.loc["B", "vs A"] == 29.0 / 13.0
    assert "30%" in machine_note(rows) and "busiest round" in machine_note(rows)  # 0.05 * 6
    assert machine_note(pd.DataFrame({"throughput_rps": [1.0]})).startswith("how busy")


def test_the_sweeps_findings_are_read_from_its_own_rows():
    rows = pd.DataFrame({"parallel_workers": [1, 1, 2, 2, 1], "max_batch_size": [1, 8, 1, 8, 1],
                         "concurrency": [8, 8, 8, 8, 1], "throughput_rps": [10.0, 12.0, 30.0, 33.0, 5.0],
                         "avg_batch": [1.0, 3.5, 1.0, 2.0, 1.0]})
    assert scaling_findings(rows) == [
        "At 8 callers in your run, two workers served 3.00x what one worker did, without batching.",
        "At 8 callers in your run, two workers served 2.75x what one worker did, with batching.",
        "At 8 callers in your run, batching served 1.20x no batching, with 1 worker (batches of 3.5 images on "
        "average).",
        "At 8 callers in your run, batching served 1.10x no batching, with 2 workers (batches of 2.0 images on "
        "average)."]
    assert scaling_findings(rows[rows.concurrency == 1]) == []
