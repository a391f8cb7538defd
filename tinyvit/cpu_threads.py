"""How many torch threads one inference process should use.

Each parallel worker is a process with its own torch thread pool: N workers that each
take every core fight for the CPU. So the cores are split between the workers.

The model cannot see the server's ``settings.json``, so the worker count comes from
``parameters.extra.parallel_workers`` in ``model-settings.json`` (the lab's managed
server writes it there) or from ``MLSERVER_PARALLEL_WORKERS``. With plain
``mlserver start`` and several workers, set one of them (or
``parameters.extra.torch_threads``) yourself.
"""

import multiprocessing
import os


def torch_threads(extra: dict) -> int:
    """Threads for this process, from ``parameters.extra`` (``torch_threads`` wins), else this
    process's share of the cores, at most ``OMP_NUM_THREADS`` when the environment sets it."""
    if "torch_threads" in extra:
        return max(1, int(extra["torch_threads"]))
    cores = len(os.sched_getaffinity(0))
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
