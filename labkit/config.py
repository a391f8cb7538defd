"""Every ``LAB_*`` switch the lab reads, in one place, with one rule for true and false.

* ``LAB_QUICK``: short load tests (CI, grading); same code paths.
* ``LAB_FREE_PORTS``: never MLServer's default ports 8080-8082 (graders side by side,
  students on a shared JupyterHub host).
* ``LAB_CHECK_IN_PROCESS``: run the checks that import the student's file in this process
  instead of a child (the child itself sets it; tests of a check's feedback do too).
* ``LAB_START_LOG``: a file that gets one line per MLServer start, with its seconds until ready
  (``make test`` sums them up).
* ``LAB_CHALLENGE_LOCK``, ``LAB_CHALLENGE_THREADS``: set by ``make grade`` (values, not switches):
  notebook 05's challenge measures one hand-in at a time, with the machine's threads.

A switch is on for ``1``, ``true``, ``yes`` or ``on`` and off for ``0``, ``false``, ``no``,
``off`` or unset/empty, in any case; anything else is an error that names the variable
(an earlier rule read ``LAB_FREE_PORTS=true`` as off, without a word).
"""

from __future__ import annotations

import os

QUICK = "LAB_QUICK"
FREE_PORTS = "LAB_FREE_PORTS"
START_LOG = "LAB_START_LOG"
CHECK_IN_PROCESS = "LAB_CHECK_IN_PROCESS"
# Set by `make grade` for each hand-in: a lock file shared by the hand-ins graded side by side, and
# the threads one process may use when it has the machine (notebook 05's challenge measures alone).
CHALLENGE_LOCK = "LAB_CHALLENGE_LOCK"
CHALLENGE_THREADS = "LAB_CHALLENGE_THREADS"
ON = {"1", "true", "yes", "on"}
OFF = {"", "0", "false", "no", "off"}


def switch(name: str) -> bool:
    """Whether the environment variable ``name`` is on (the rule above)."""
    value = os.environ.get(name, "").strip().lower()
    if value in ON:
        return True
    if value in OFF:
        return False
    raise ValueError(f"{name}={os.environ[name]!r}: write 1 (or true, yes, on) to turn it on, "
                     "0 (or false, no, off) or nothing to leave it off")


def quick_mode() -> bool:
    """``LAB_QUICK``: shorter loads, same code path."""
    return switch(QUICK)


def free_ports_only() -> bool:
    """``LAB_FREE_PORTS``: every server on free ports, never the defaults."""
    return switch(FREE_PORTS)


def start_log() -> str | None:
    """``LAB_START_LOG``: the file that counts MLServer starts, or None."""
    return os.environ.get(START_LOG) or None


def checks_in_process() -> bool:
    """``LAB_CHECK_IN_PROCESS``: a check that imports the student's file runs here, not in a child."""
    return switch(CHECK_IN_PROCESS)
