"""labkit.measure.scaling: each run really applies its settings to the server and measures it."""

import json
import re

import pytest

from labkit.measure import ScalingLab
from labkit.measure.scaling import describe
from tests.helpers.lab import FREE_PORTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(checkpoint):
    lab = ScalingLab(weights=checkpoint, duration=1.5, **FREE_PORTS)
    yield lab
    lab.stop()


def run_copy(lab, name):
    return json.loads((lab.server.run_folder / name).read_text())


def test_runs_change_the_servers_settings_for_real(lab):
    first = lab.run(parallel_workers=1, concurrency=2)
    assert run_copy(lab, "settings.json")["parallel_workers"] == 1
    assert first["errors"] == 0 and first["requests"] > 0
    assert first["configuration"] == "workers=1 no batching"
    pid = lab.server.process.pid

    # New batching only: the model is loaded again in the same server process.
    second = lab.run(parallel_workers=1, max_batch_size=4, max_batch_time=0.1, concurrency=4)
    assert lab.server.process.pid == pid
    assert run_copy(lab, "model-settings.json")["max_batch_size"] == 4
    # Read off the server's own metrics: 4 callers and a 100 ms window make real batches.
    assert second["avg_batch"] > 1.5

    # Another worker count: a new server process.
    third = lab.run(parallel_workers=0, concurrency=2)
    assert lab.server.process.pid != pid
    assert run_copy(lab, "settings.json")["parallel_workers"] == 0
    assert run_copy(lab, "model-settings.json")["max_batch_size"] == 1
    assert third["errors"] == 0
    assert list(lab.results.configuration) == ["workers=1 no batching", "workers=1 batch<=4/100ms",
                                               "workers=0 no batching"]


def test_the_panel_button_adds_a_row(lab):
    panel = lab.panel()
    controls = panel.children[0].children[0].children
    button = panel.children[0].children[1]
    workers = next(control for control in controls if control.description == "workers")
    # The controls start at the last run's settings: pressing Run measures the running
    # server again instead of restarting it with defaults.
    last = lab.results.iloc[-1]
    starting = {control.description: control.value for control in controls}
    assert (starting["workers"], starting["max batch"], starting["batch time (s)"]) == \
        (last.parallel_workers, last.max_batch_size, last.max_batch_time)
    assert starting["concurrency"] == last.concurrency and starting["payload"] == last.payload
    # Each label is as wide as its text (the default width cut "batch time (s)" to "batch tim...").
    assert {control.style.description_width for control in controls} == {"initial"}
    workers.value = 0
    rows = len(lab.results)
    button.click()
    assert len(lab.results) == rows + 1
    assert lab.results.parallel_workers.iloc[-1] == 0
    assert "req/s" in panel.children[1].value
    # hog40: the row's load, which run() records, is shown beside it and in the table
    assert re.search(r"other processes took \d+% of the CPU meanwhile", panel.children[1].value)
    assert "others' CPU %" in lab.table() and lab.table()["others' CPU %"].between(0, 100).all()


def test_describe_names_batching_only_when_it_is_on():
    assert describe({"parallel_workers": 1, "max_batch_size": 8, "max_batch_time": 0}) == "workers=1 no batching"
    assert describe({"parallel_workers": 2, "max_batch_size": 8, "max_batch_time": 0.01}) == "workers=2 batch<=8/10ms"
