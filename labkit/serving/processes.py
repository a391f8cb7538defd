"""Processes and ports: stop process groups, pid files, the orphan sweep, free ports, and
one way to wait for something (``wait_until``, ``wait_until_serving``).

A lab server runs in its own process group (the supervisor, MLServer, its workers). It is
recorded in a pid file in a private per-user folder, so that a server whose kernel died is
found and stopped before the next start (``stop_orphans``)."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Callable, Collection


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def wait_until_serving(process: subprocess.Popen, ready_url: str, timeout: float, log: IO[bytes],
                       name: str) -> None:
    """Wait until ``ready_url`` answers 200; a ``RuntimeError`` with the end of ``log`` (the
    process's output) if ``process`` exits first, or after ``timeout`` seconds."""
    import requests

    def ready() -> bool:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{name} exited with code {process.returncode}:\n"
                               f"{log.read().decode(errors='replace')[-3000:]}")
        try:
            return requests.get(ready_url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    if not wait_until(ready, timeout, interval=0.25):
        raise RuntimeError(f"{name} not ready after {timeout:.0f} s")


def choose_ports(requested: dict[str, int | None], defaults: dict[str, int],
                 defaults_allowed: bool = True) -> dict[str, int]:
    """A port for each key: the one asked for if free; for None the default when allowed and
    free; otherwise (0, taken, or the default not allowed) a free one; never one port twice."""
    chosen: dict[str, int] = {}
    for key, default in defaults.items():
        port = requested.get(key)
        if port is None or port == 0 or not port_is_free(port):
            use_default = port is None and defaults_allowed and port_is_free(default)
            port = default if use_default else free_port()
        while port in chosen.values():
            port = free_port()
        chosen[key] = port
    return chosen


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``port`` on loopback now. With SO_REUSEADDR, as uvicorn
    and gRPC bind: connections of a server that just died wait in TIME_WAIT for a minute and
    do not stop a new one (without it, a restarted kernel's server moved to other ports)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_group(pid: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    """SIGTERM to the group's leader ``pid`` (it passes the signal on: the supervisor to
    MLServer, MLServer to its workers); SIGKILL to the whole group after ``timeout`` s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        if not group_alive(pid):
            return
    def gone() -> bool:
        return (process is None or process.poll() is not None) and not group_alive(pid)

    if wait_until(gone, timeout):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if process is not None:
        process.wait(5)


def process_tree(pid: int) -> list:
    """``pid`` and all its descendants (psutil.Process), also those in sessions of their
    own (a notebook's kernel, the MLServer it started); [] if ``pid`` is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def total_memory(processes: Iterable, kind: str = "pss") -> int:
    """Memory (bytes) of ``processes`` (psutil.Process), summed. ``kind="pss"``: proportional
    set size, shared pages split between the processes that share them, so the sum is what
    they add to the machine's memory; ``"rss"``: resident set size, shared pages counted in
    every process (cheaper to read). A process that ended meanwhile counts 0."""
    import psutil

    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss if kind == "pss" else process.memory_info().rss
        except psutil.Error:
            pass
    return total


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants, also those in sessions of their own (a
    notebook's kernel, the MLServer it started)."""
    import psutil

    family = process_tree(pid)
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts: check /proc for live members.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def group_listens_on(pid: int, port: int) -> bool | None:
    """Whether ``pid`` or one of its descendants listens on TCP ``port`` (a server's own
    port, not one that another process bound first); None where the system does not let
    this process list their sockets."""
    import psutil

    family = process_tree(pid)
    denied = False
    for process in family:
        try:
            if any(conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
                   for conn in process.net_connections("tcp")):
                return True
        except psutil.AccessDenied:
            denied = True
        except psutil.Error:
            continue
    return None if denied else False


def pid_dir() -> Path:
    """Where this user's servers are recorded: one private folder per user, since a
    shared host (JupyterHub without containers) may give all users one temp dir."""
    return Path(tempfile.gettempdir()) / f"mlserver-lab-pids-{os.getuid()}"


def write_pid_file(pid: int, run_dir: Path | None = None) -> None:
    folder = pid_dir()
    record = {"pid": pid, "parent": os.getpid(), "run_dir": str(run_dir) if run_dir else None}
    for _ in range(3):  # another kernel of this user may remove the folder as it empties
        folder.mkdir(mode=0o700, exist_ok=True)
        try:
            (folder / f"{pid}.json").write_text(json.dumps(record))
            return
        except FileNotFoundError:
            continue
    raise RuntimeError(f"could not write a pid file in {folder}")


def remove_pid_file(pid: int, folder: str | os.PathLike | None = None) -> None:
    """Remove the record, and the user's pid folder (``pid_dir()`` unless given) once it
    is empty: nothing of the lab stays in a shared temp dir."""
    folder = Path(folder) if folder else pid_dir()
    (folder / f"{pid}.json").unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # other servers are recorded, or it is gone already


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_orphans(keep: Collection[int] | None = None) -> list:
    """Stop lab servers whose parent (a kernel, a test run) has died; return their pids.
    ``keep``: the pids of this process's servers that are running (``ModelServer`` knows
    them); a record of this process outside it is stale. ``None``: every server this
    process started is its own business, never an orphan (e.g. for the grader)."""
    stopped: list[int] = []
    if not pid_dir().is_dir():
        return stopped
    for pid_file in pid_dir().glob("*.json"):
        try:
            record = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        pid, parent = record["pid"], record["parent"]
        if alive(parent) and parent != os.getpid():
            continue
        if parent == os.getpid() and (keep is None or pid in keep):
            continue
        if alive(pid) and is_mlserver(pid):
            stop_group(pid, timeout=10)
            stopped.append(pid)
        remove_run_dir(record.get("run_dir"))
        pid_file.unlink(missing_ok=True)
    return stopped


def remove_run_dir(run_dir: str | None) -> None:
    """The temporary copy a dead kernel's server ran from (only the lab's own folders)."""
    if not run_dir:
        return
    if Path(run_dir).name.startswith("mlserver-lab-") and Path(run_dir).parent == Path(tempfile.gettempdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def is_mlserver(pid: int) -> bool:
    try:
        return b"mlserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


