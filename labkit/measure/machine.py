"""How busy the machine was while something was measured: the share of the CPU that
processes other than this one and its children took (another student's server on a shared
hub, a browser, a build), read from ``/proc`` with no dependency. A measurement that reports
it lets the reader tell "slower" from "the machine was busy".

    with OtherLoad() as load:
        ...  # measure
    load.share          # 0.45: other processes took 45 % of what the cores could do
    load.sentence()     # "other processes used 45 % of the CPU while this ran: ..."
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# Above this share of the CPU taken by others, a comparison measured meanwhile is said to be
# unreliable: on 2 cores, 25 % is half a core, what one busy neighbour takes.
BUSY_SHARE = 0.25


def busy_cpu_seconds() -> float:
    """Seconds every core of the machine spent busy since boot (``/proc/stat``'s first line)."""
    fields = [float(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds of process ``root`` (default: this one) and every descendant alive now,
    each with what its reaped children used (``/proc/<pid>/stat``: utime, stime, cutime,
    cstime): the measuring process, the servers it started, their workers."""
    root = os.getpid() if root is None else root
    parents, times = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (command)", which may hold spaces
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(float(value) for value in fields[11:15])
    ours, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in ours]
        ours.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in ours) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """A context manager: the share of the machine's CPU that other processes took during
    its block (``share``, 0 to 1), beside this process and its descendants' own seconds."""

    def __init__(self) -> None:
        self.share = 0.0
        self.seconds = 0.0
        self.other_seconds = 0.0  # CPU seconds the other processes took during the block
        self.cores = len(os.sched_getaffinity(0))

    def __enter__(self) -> OtherLoad:
        self._started, self._busy, self._ours = time.monotonic(), busy_cpu_seconds(), own_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._started
        self.other_seconds = max(0.0, (busy_cpu_seconds() - self._busy) - (own_cpu_seconds() - self._ours))
        capacity = self.seconds * self.cores
        self.share = min(1.0, self.other_seconds / capacity) if capacity > 0 else 0.0

    @property
    def busy(self) -> bool:
        return self.share > BUSY_SHARE

    def sentence(self) -> str:
        """What the reader should know about the machine while this ran."""
        return describe(self.share, self.cores)


def describe(share: float, cores: int | None = None) -> str:
    """A sentence on a measurement during which other processes took ``share`` of the CPU."""
    cores = cores or len(os.sched_getaffinity(0))
    said = f"other processes used {share:.0%} of the CPU ({cores} cores) while this ran"
    if share <= BUSY_SHARE:
        return said + "."
    return (said + ": the measurement shared the machine, so its numbers are lower and its spread wider than "
            "on a quiet one, and even its ratios may not hold. " + _what_a_busy_core_does() + " Run it again when "
            "the machine is quieter; until then, read the lab's records rather than this run.")


def _what_a_busy_core_does() -> str:
    """Why a ratio does not survive a busy core, from the lab's shared-CPU record."""
    said = ("PyTorch splits each forward pass over a thread per core, and while another process holds a core "
            "those threads wait for each other: a PyTorch server then slows many times more than an engine, or "
            "than a process with one thread.")
    try:
        from labkit.measure.record import shared_cpu_summary

        record = shared_cpu_summary()
    except Exception:  # the record is a citation, never a reason for a measurement to fail
        record = None
    if not record:
        return said
    label, quiet, busy = record["worst"]
    again = f", with {' and '.join(record['since'])} measured since" if record.get("since") else ""
    return (f"{said} In the lab's record ({record['path']}{again}), {record['held']} of the notebooks' "
            f"{record['ratios']} "
            f"ratios held within {record['within']:.0%} beside one busy core; {label} went from {quiet:.1f} on a "
            f"quiet machine to {busy:.1f}.")
