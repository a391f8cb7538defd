"""Hand the memory a large batch freed back to the system (glibc's ``malloc_trim``).

glibc keeps what Python and torch free inside the process's heap, to reuse it. A forward pass
over 8 images frees about 0.1 GB of activations, and over batches of mixed sizes the heap
keeps growing with what it cannot reuse, so a worker under a batching load holds far more
than it uses between two calls.

Trimming costs the next call its page faults. So the service trims only when the process's
resident memory has grown by more than ``GROWTH_LIMIT`` since the last trim, which one image
(about 25 MB) does not do and a batch of 8 (about 0.1 GB) does, and by default only in a
parallel worker. ``make bench-memory`` (``benchmarks/results/freed-memory-2026-12-06.md``: 8
callers, side by side, 5 rounds) measured both: two workers with batching of 8 (notebook 05)
peaked at 0.93 times the memory and held 0.85 times after the load, at 0.94 times the rate
(the rounds' rates overlap); the tuned single process (``parallel_workers: 0``), whose rate is
the lab's served best with PyTorch, lost more rate in each of that day's runs (0.81 to 0.93
times, the ``-run*`` files beside the record), so there it stays off.
``parameters.extra.return_freed_memory`` (true or false) overrides the default.

Elsewhere than glibc (macOS, musl), or without ``/proc``, this does nothing: those allocators
have their own rules, and without ``/proc/self/statm`` there is no growth to measure.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os

GROWTH_LIMIT = 64 << 20  # bytes
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _glibc() -> ctypes.CDLL | None:
    if not os.path.exists("/proc/self/statm"):  # no /proc (not Linux, or a sandbox without it)
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


_LIBC = _glibc()
_after_last_trim: list[int | None] = [None]  # resident bytes right after the last trim


def wanted(extra: dict) -> bool:
    """Whether this process should return freed memory: ``parameters.extra.return_freed_memory``,
    else only in a parallel worker (see above)."""
    # A worker is a multiprocessing process; MLServer's own process is "MainProcess" (the same
    # test as cpu_threads.py, kept here so that each helper module stands alone).
    in_worker = multiprocessing.current_process().name != "MainProcess"
    return bool(extra.get("return_freed_memory", in_worker))


def resident_bytes() -> int:
    """This process's resident memory (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def return_freed_memory(limit: int = GROWTH_LIMIT) -> bool:
    """Give the heap's free pages back when resident memory grew by more than ``limit`` bytes
    since the last trim (or never was trimmed); True if it trimmed."""
    if _LIBC is None:
        return False
    before = _after_last_trim[0]
    if before is not None and resident_bytes() - before <= limit:
        return False
    _LIBC.malloc_trim(0)
    _after_last_trim[0] = resident_bytes()
    return True
