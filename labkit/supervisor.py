"""Run one command as the leader of its process group, and make sure the whole group
ends when asked to: ``python -m labkit.supervisor --grace 10 -- mlserver start ...``.

Why: ``labkit.server`` asks Linux to send SIGTERM to the server when the kernel that
started it dies (PR_SET_PDEATHSIG). MLServer 1.7.1 does not always finish its own
shutdown after SIGTERM: when its clients vanish mid-load (the kernel was killed with
its load threads), the main process can hang for good in its inference pool's
``Dispatcher.stop`` (docs/upstream-issues.md), holding its ports and a gigabyte of
memory with nobody left to stop it. This supervisor receives that SIGTERM instead,
passes it on, and after ``--grace`` seconds SIGKILLs every process still in the group.
Standard library only: it starts in a few milliseconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading


def kill_group() -> None:
    """SIGKILL every process of this group, the supervisor included."""
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grace", type=float, default=10, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    if os.getpgid(0) != os.getpid():
        parser.error("must lead its own process group (start it with start_new_session=True)")

    child = subprocess.Popen(command)

    def stop(signum: int, frame: object) -> None:
        try:
            child.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        timer = threading.Timer(args.grace, kill_group)
        timer.daemon = True
        timer.start()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
