"""The servers this process started and still runs: one registry, stopped at exit.

Notebook checks find the student's server through it (:func:`running_server`), a new start
stops the orphans of killed kernels except these, and a start cell run again replaces the
server it started before.
"""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Protocol

from labkit.serving.runcopy import ServerOptions


class Server(Protocol):
    """What the registry reads of a server (``labkit.serving.server.ModelServer``, which
    imports this module: the registry does not import it back)."""

    model_dir: Path
    options: ServerOptions
    started_at: float

    @property
    def process(self) -> object: ...  # read only: ModelServer's is a Popen or None

    @property
    def running(self) -> bool: ...

    @property
    def http_url(self) -> str: ...

    def stop(self) -> None: ...


_running: set = set()


def add(server: Server) -> None:
    _running.add(server)


def discard(server: Server) -> None:
    _running.discard(server)


def servers() -> list:
    """Every server this process started and has not stopped."""
    return list(_running)


def pids() -> set:
    """Their process ids (kept when orphans of other kernels are stopped)."""
    return {server.process.pid for server in _running if server.process}


def running_server(model_dir: Path) -> Server | None:
    """The server of ``model_dir`` (resolved) started last and still running, from the
    folder's own settings (not one a check started with given model settings), or None."""
    mine = [server for server in _running if server.model_dir == model_dir and server.running
            and server.options.model_settings is None]
    return max(mine, key=lambda server: server.started_at, default=None)


def stop_servers_started_alike(server: Server) -> None:
    """Stop this process's other servers of the same folder with the same options: re-running
    a notebook's start cell after an edit must not leave the old server (old code, its memory,
    its ports) running beside the new one. A server of the same folder with other settings
    (batching on, say) may run beside it on purpose."""
    for other in list(_running):
        if (other is not server and other.running and other.model_dir == server.model_dir
                and other.options == server.options):
            print(f"Stopping the server this kernel already runs for {server.model_dir.name}/ "
                  f"(on {other.http_url}, started with the files as they were then).")
            other.stop()


@atexit.register
def stop_all() -> None:
    for server in list(_running):
        server.stop()
