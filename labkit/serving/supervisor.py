"""Run one command as the leader of its process group, and make sure the whole group
ends when asked to: ``python -m labkit.serving.supervisor --grace 10 -- mlserver start ...``.

Why: ``labkit.serving.server`` asks Linux to send SIGTERM to the server when the kernel that
started it dies (PR_SET_PDEATHSIG). MLServer 1.7.1 does not always finish its own
shutdown after SIGTERM: when its clients vanish mid-load (the kernel was killed with
its load threads), the main process can hang for good in its inference pool's
``Dispatcher.stop`` (docs/upstream-issues.md), holding its ports and a gigabyte of
memory with nobody left to stop it. This supervisor receives that SIGTERM instead,
passes it on, and after ``--grace`` seconds SIGKILLs every process still in the group.
When the server has ended and the process that started it is gone (a killed kernel, a
JupyterHub server stopped past its grace), nobody else will clean up after it, so the
supervisor removes the server's run copy (``--run-dir``) and pid file (``--pid-dir``).
Standard library only: it starts in a few milliseconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading


def kill_the_rest_of_the_group() -> None:
    """SIGKILL every other process of this group (the server and its workers)."""
    me = os.getpid()
    if not os.path.isdir("/proc"):  # no process table to read (not Linux): the whole group
        os.killpg(0, signal.SIGKILL)
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            try:
                if os.getpgid(int(entry)) == me:
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass  # gone meanwhile, or not ours


def clean_up(run_dir: str | None, pid_dir: str | None) -> None:
    """Remove the run copy and this server's pid file, as ``ModelServer.stop()`` would.
    Imported only here, after the server ended: starting stays standard-library fast."""
    from labkit.serving.processes import remove_pid_file, remove_run_dir

    remove_run_dir(run_dir)
    remove_pid_file(os.getpid(), pid_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grace", type=float, default=10, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("--run-dir", help="the server's run copy, removed if the server outlives its starter")
    parser.add_argument("--pid-dir", help="the folder of the server's pid file (<pid>.json), removed likewise")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    if os.getpgid(0) != os.getpid():
        parser.error("must lead its own process group (start it with start_new_session=True)")

    starter = os.getppid()
    child = subprocess.Popen(command)

    def stop(signum: int, frame: object) -> None:
        try:
            child.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        timer = threading.Timer(args.grace, kill_the_rest_of_the_group)
        timer.daemon = True
        timer.start()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    code = child.wait()
    if os.path.isdir("/proc"):
        kill_the_rest_of_the_group()  # workers of a server that crashed
    if os.getppid() != starter:  # orphaned: the starter's stop() will not clean up
        clean_up(args.run_dir, args.pid_dir)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
