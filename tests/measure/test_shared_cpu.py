"""benchmarks/shared_cpu.py: the conditions alternate, the hog spins meanwhile, and a ratio holds
when the hog moves it by at most 25 %. In process, with made-up candidates (no server: what is
tested is the comparison's bookkeeping, not MLServer)."""

import contextlib
import time

import pytest

from benchmarks import shared_cpu


class MadeUp(shared_cpu.Comparison):
    """Candidate "a" serves twice what "b" does when quiet; beside the hog, ``hog_ratio`` times."""

    def __init__(self, hog_ratio: float):
        super().__init__("00", "a serves more than b", "throughput_rps", [("a / b", "a", "b")])
        self.hog_ratio = hog_ratio
        self.seen = []

    @contextlib.contextmanager
    def running(self, seconds):
        def one(name):
            time.sleep(seconds)  # the hog spins meanwhile
            hogged = self._hogged()
            self.seen.append((name, hogged))
            return {"throughput_rps": (self.hog_ratio if hogged else 2.0) if name == "a" else 1.0}

        yield {"a": "a", "b": "b"}, one

    @staticmethod
    def _hogged() -> bool:
        """Whether a hog this test started spins now (CI, stop 47: a search by command line also
        found another process on the machine)."""
        return any(_spinning(pid) for pid in HOGS)


HOGS: list[int] = []


def _spinning(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def recorded_hogs(monkeypatch):
    """shared_cpu.hog, with the pid of each hog it starts kept in HOGS."""
    started = shared_cpu.hog

    @contextlib.contextmanager
    def hog():
        with started() as pid:
            HOGS.append(pid)
            yield pid

    HOGS.clear()
    monkeypatch.setattr(shared_cpu, "hog", hog)
    yield HOGS


@pytest.mark.slow  # a real hog through 4 rounds: 3.5 s each
@pytest.mark.parametrize("hog_ratio, holds", [(2.2, True), (1.2, False)])
def test_quiet_and_hog_rounds_alternate_and_a_ratio_holds_within_a_quarter(hog_ratio, holds, recorded_hogs):
    comparison = MadeUp(hog_ratio)
    result = shared_cpu.compare(comparison, rounds=2, seconds=0.3)
    # quiet, hog, quiet, hog: each round measures every candidate, in turn
    assert comparison.seen == [("a", False), ("b", False), ("a", True), ("b", True)] * 2
    ratio = result["ratios"]["a / b"]
    assert (ratio["quiet"], ratio["hog"]) == (2.0, hog_ratio)
    assert ratio["holds"] is holds and ratio["same_side_of_1"] is True
    rounds = result["rounds"]
    assert [(entry["condition"], entry["round"]) for entry in rounds] == [("quiet", 1), ("hog", 1), ("quiet", 2),
                                                                           ("hog", 2)]
    # The hog spun on a core through its rounds (0.6 s each), and was gone in the quiet ones.
    assert all(entry["hog_cpu_s"] >= 0.2 for entry in rounds if entry["condition"] == "hog"), rounds
    assert all(entry["hog_cpu_s"] == 0 for entry in rounds if entry["condition"] == "quiet")
    assert len(recorded_hogs) == 2
    gone = time.monotonic() + 2  # SIGKILL is sent; the process ends when it is next scheduled
    while MadeUp._hogged() and time.monotonic() < gone:
        time.sleep(0.05)
    assert not MadeUp._hogged()
    assert "| 00 | a / b | 2.00 |" in shared_cpu.markdown(
        {"date": "d", "commit": "c", "cores": 2, "rounds": 2, "seconds": 0.3, "comparisons": {"made up": result}})
