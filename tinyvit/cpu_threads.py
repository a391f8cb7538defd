"""How many torch threads one inference process should use.

Each parallel worker is a process with its own torch thread pool: N workers that each
take every core fight for the CPU. So the cores are split between the workers. The cores are
those the process may use: in a container whose CPU time is capped (a JupyterHub pod's
``cpu.limit``), the cap, not the machine's cores it can see.

The model cannot see the server's ``settings.json``, so the worker count comes from
``parameters.extra.parallel_workers`` in ``model-settings.json`` (the lab's managed
server writes it there) or from ``MLSERVER_PARALLEL_WORKERS``. With plain
``mlserver start`` and several workers, set one of them (or
``parameters.extra.torch_threads``) yourself.
"""

import math
import multiprocessing
import os
from pathlib import Path


def torch_threads(extra: dict) -> int:
    """Threads for this process, from ``parameters.extra`` (``torch_threads`` wins), else this
    process's share of the cores, at most ``OMP_NUM_THREADS`` when the environment sets it."""
    if "torch_threads" in extra:
        return max(1, int(extra["torch_threads"]))
    cores = usable_cores()
    # The main MLServer process runs the model itself only with parallel_workers: 0.
    in_worker = multiprocessing.current_process().name != "MainProcess"
    workers = parallel_workers(extra) if in_worker else 1
    share = max(1, cores // max(1, workers))
    # OpenMP's own variable, which torch reads when nothing sets its threads: whoever runs the
    # server beside other busy processes (a test run, a class graded two at a time) can ask for
    # fewer threads than cores. A thread per core waits on its slowest thread there: 03's checks
    # took 5-6 times as long with two threads as with one beside another busy core.
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, max(1, int(wanted))) if wanted.isdigit() else share


def parallel_workers(extra: dict) -> int:
    if "parallel_workers" in extra:
        return int(extra["parallel_workers"])
    return int(os.environ.get("MLSERVER_PARALLEL_WORKERS", 1))


CGROUP_ROOT = "/sys/fs/cgroup"


def usable_cores(cgroup_root: str | None = None) -> int:
    """The cores this process may use: those it may run on, or fewer where its cgroup caps its CPU
    time. A JupyterHub pod with ``cpu.limit: 2`` on a 32-core node runs on all 32 and may use two:
    a torch thread per visible core there is throttled to a crawl (torch itself does not read
    the cap either)."""
    visible = len(os.sched_getaffinity(0))
    cap = cpu_cap(cgroup_root or CGROUP_ROOT)
    return max(1, min(visible, math.ceil(cap))) if cap else visible


def cpu_cap(cgroup_root: str = CGROUP_ROOT) -> float | None:
    """Cores' worth of CPU time this process's cgroup allows (its quota over its period), or None
    without a cap: cgroup v2's ``cpu.max`` ("max 100000" or "200000 100000"), else v1's
    ``cpu/cpu.cfs_quota_us`` (-1: none) over ``cpu.cfs_period_us``."""
    root = Path(cgroup_root)
    for own in _own_cgroups():
        inside = own.strip("/")
        try:
            quota, period = (root / inside / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        except (OSError, ValueError):
            pass
        try:
            quota_us = int((root / "cpu" / inside / "cpu.cfs_quota_us").read_text())
            period_us = int((root / "cpu" / inside / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
        except (OSError, ValueError):
            pass
    return None


def _own_cgroups() -> list[str]:
    """This process's cgroup paths (/proc/self/cgroup), then "/": inside a container with its own
    cgroup namespace, "/" is the container's."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    paths = [line.split(":", 2)[2] for line in lines if line.count(":") >= 2]
    return [path for path in dict.fromkeys(paths) if path != "/"] + ["/"]
