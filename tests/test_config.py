"""labkit.config: every LAB_* switch read with one rule for true and false."""

import pytest

from labkit import config
from labkit.serving import ModelServer
from tests.helpers.lab import REPO


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True),
                                       ("0", False), ("false", False), ("no", False), ("off", False), ("", False)])
def test_one_rule_for_every_switch(monkeypatch, value, on):
    for name, read in ((config.QUICK, config.quick_mode), (config.FREE_PORTS, config.free_ports_only)):
        monkeypatch.setenv(name, value)
        assert read() is on, (name, value)


def test_an_unreadable_switch_is_an_error_that_names_it(monkeypatch):
    monkeypatch.setenv(config.FREE_PORTS, "ture")
    with pytest.raises(ValueError, match="LAB_FREE_PORTS='ture'"):
        config.free_ports_only()


def test_free_ports_true_keeps_a_server_off_the_default_ports(monkeypatch):
    # LAB_FREE_PORTS=true used to be read as off: only "1" counted.
    monkeypatch.setenv(config.FREE_PORTS, "true")
    server = ModelServer(REPO / "tinyvit")
    server._choose_ports()
    assert not set(server.ports.values()) & {8080, 8081, 8082}, server.ports


def test_no_module_reads_a_lab_switch_by_itself():
    readers = [path.name for path in (REPO / "labkit").glob("*.py") if path.name != "config.py"
               and ('environ.get("LAB_' in path.read_text() or "environ.get(FREE_PORTS" in path.read_text())]
    assert not readers, readers
