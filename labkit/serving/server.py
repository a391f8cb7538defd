"""Run MLServer as a managed subprocess from a notebook or a test.

    with ModelServer("tinyvit", max_batch_size=8, max_batch_time=0.01) as server:
        requests.get(server.model_url)

The student's model folder is never modified: the server runs a copy in a
temporary folder with the overrides applied, bound to 127.0.0.1, on the default
ports when free and on free ports otherwise. Start-up waits on
``/v2/models/<name>/ready`` (``/v2/health/ready`` says 200 even after a failed
load). The server is stopped by ``stop()``, by the ``with`` block, at
interpreter exit, and (Linux) when its parent process dies. MLServer runs under
``labkit.serving.supervisor``, which SIGKILLs its whole process group if it has not shut
down ``SHUTDOWN_GRACE`` seconds after SIGTERM. A server left behind by a killed
kernel on another OS is found through its pid file and stopped before the next
start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

from labkit import config
from labkit.paths import REPO_ROOT, PathLike
from labkit.serving import registry
from labkit.serving.addresses import Addresses
from labkit.serving.processes import (choose_ports, die_with_parent, pid_dir, remove_pid_file, stop_group,
                                      stop_orphans, write_pid_file)
from labkit.serving.readiness import load_again, wait_until_model_ready
from labkit.serving.runcopy import MODEL_LEVEL, RunCopy, ServerOptions, folder_model_settings, scaling
from labkit.serving.startlog import (PortTaken, ServerStartError, StartInterrupted, last_exception, start_error,
                                     startup_lines)

DEFAULT_PORTS = {"http_port": 8080, "grpc_port": 8081, "metrics_port": 8082}
# Seconds MLServer gets to shut down after SIGTERM before its process group is SIGKILLed
# (labkit.serving.supervisor; MLServer can hang in its own shutdown).
SHUTDOWN_GRACE = 10
# Imported from here by notebooks (04 catches a failed start and prints its cause).
__all__ = ["ModelServer", "ServerStartError", "PortTaken", "last_exception", "resolve_model_dir",
           "running_server", "DEFAULT_PORTS", "SHUTDOWN_GRACE"]


class ModelServer(Addresses):
    """One MLServer process serving one model folder.

    The keyword arguments are the three ports (``None``: the default port when free) and
    the options of :class:`labkit.serving.runcopy.ServerOptions` (``None`` keeps the
    folder's own setting), kept as ``server.options``; ``restart()`` and ``reload()`` take the
    same names. The server runs a :class:`~labkit.serving.runcopy.RunCopy` of the folder, waits
    for it with :mod:`labkit.serving.readiness`, reads its start in the log
    (:mod:`labkit.serving.startlog`) and is listed in :mod:`labkit.serving.registry` while it runs.

    Args:
        model_dir: the model folder (``model-settings.json``, the service, ``settings.json``).
        parallel_workers, max_batch_size, max_batch_time, weights, extra, server_settings, env,
        python, model_settings: :class:`~labkit.serving.runcopy.ServerOptions`.
        http_port, grpc_port, metrics_port: ``None`` for MLServer's default when free (a free
            port otherwise, or always under ``LAB_FREE_PORTS``), 0 for any free port.

    Raises:
        ServerStartError: from ``start()``: MLServer exited, or never became ready, with the
            cause read from its log (the first error in the student's own file first).
    """

    def __init__(self, model_dir: PathLike = "tinyvit", *, parallel_workers: int | None = None,
                 max_batch_size: int | None = None, max_batch_time: float | None = None,
                 weights: PathLike | None = None, extra: dict | None = None,
                 server_settings: dict | None = None, env: dict | None = None,
                 http_port: int | None = None, grpc_port: int | None = None, metrics_port: int | None = None,
                 python: PathLike | None = None, model_settings: dict | None = None):
        self.model_dir = resolve_model_dir(model_dir)
        self.options = ServerOptions(parallel_workers=parallel_workers, max_batch_size=max_batch_size,
                                     max_batch_time=max_batch_time, weights=weights,
                                     # ServerOptions turns None into {} (and sys.executable) itself
                                     extra=extra, server_settings=server_settings,  # type: ignore[arg-type]
                                     env=env, python=python,  # type: ignore[arg-type]
                                     model_settings=model_settings)
        self._read_model_settings()
        self.ports: dict[str, int | None] = {"http_port": http_port, "grpc_port": grpc_port,
                                             "metrics_port": metrics_port}
        self.process: subprocess.Popen | None = None
        self.copy: RunCopy | None = None  # this start's run copy and log
        self.started_at = 0.0

    # ----------------------------------------------------------- state
    @property
    def run_dir(self) -> Path | None:
        """The temporary folder of the run copy and the log (None before the first start)."""
        return self.copy.dir if self.copy else None

    @property
    def run_folder(self) -> Path:
        """The copy of the model folder that MLServer runs (same name as the original)."""
        assert self.copy is not None, "no run copy before start()"
        return self.copy.folder

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log(self) -> str:
        """Everything the server has printed so far (kept after ``stop()``)."""
        return self.copy.log if self.copy else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    def startup_lines(self) -> str:
        """The lines of MLServer's log that say where it listens and what it loaded."""
        return startup_lines(self.log)

    @property
    def scaling(self) -> dict:
        """``parallel_workers``, ``max_batch_size`` and ``max_batch_time`` the server runs with."""
        return scaling(self.model_dir, self.model_settings, self.options)

    def __repr__(self) -> str:
        state = f"running on {self.http_url}" if self.running else "stopped"
        try:
            scaling = self.scaling  # reads settings.json once
        except ServerStartError:  # the folder's settings.json does not read: its start says so
            scaling = {}
        knobs = ", ".join(f"{key}={value}" for key, value in scaling.items())
        return f"<ModelServer {self.name!r} {state} ({knobs})>"

    def changed_since_start(self) -> list:
        """Files of the model folder written after this server started: it still runs the
        old version of them until ``restart()``."""
        return self.copy.changed(self.options) if self.running and self.copy else []

    # ----------------------------------------------------------- lifecycle
    def start(self, timeout: float = 180, progress: bool | None = None) -> "ModelServer":
        """Start the server and wait until the model is ready (a progress line
        in notebooks and terminals; ``progress=False`` hides it)."""
        if progress is None:
            progress = "ipykernel" in sys.modules or sys.stderr.isatty()
        if self.running:
            return self
        stop_orphans(keep=registry.pids())
        if _in_notebook():
            registry.stop_servers_started_alike(self)
        self._read_model_settings()  # the folder as it is now: restart() after an edit uses the edit
        self._choose_ports()
        try:
            return self._launch(timeout, progress)
        except PortTaken as taken:
            # Another server (on a shared host: another user's) bound a port between our
            # choice and MLServer's bind: once more, on ports nobody uses now.
            print(f"{taken}; starting on free ports instead.", file=sys.stderr)
            self.ports = {key: 0 for key in self.ports}
            self._choose_ports()
            return self._launch(timeout, progress)

    def _launch(self, timeout: float, progress: bool) -> "ModelServer":
        """Run MLServer on the chosen ports from a fresh run copy; wait until it is ready."""
        copy = self.copy = RunCopy(self.model_dir, self.name)
        copy.write(self.model_settings, self.options, self.ports)
        copy.remember_files(self.options)
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLSERVER_")}
        env.update(self.options.env, PYTHONUNBUFFERED="1")
        with open(copy.log_path, "wb") as log_file:  # the child keeps its own copy
            self.process = process = subprocess.Popen(
                [sys.executable, "-m", "labkit.serving.supervisor", "--grace", str(SHUTDOWN_GRACE),
                 "--run-dir", str(copy.dir), "--pid-dir", str(pid_dir()), "--", *self.command(copy.folder)],
                cwd=copy.dir, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True, preexec_fn=die_with_parent)
        registry.add(self)
        self.started_at = time.monotonic()
        write_pid_file(process.pid, copy.dir)
        try:
            wait_until_model_ready(self, timeout, progress)
        except BaseException as error:
            _count_start(self.name, time.monotonic() - self.started_at, self.model_settings)  # until it failed
            self.stop()
            if isinstance(error, KeyboardInterrupt) and not isinstance(error, StartInterrupted):
                # One line in the notebook, not the frames of the loop that waited.
                raise StartInterrupted(f"the start of {self.name} was interrupted; its server is stopped.") from None
            raise
        _count_start(self.name, time.monotonic() - self.started_at, self.model_settings)
        return self

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout`` s."""
        registry.discard(self)
        if self.process is None:
            return
        stop_group(self.process.pid, timeout, self.process)
        remove_pid_file(self.process.pid)
        if self.copy is not None:
            self.copy.remove()

    def restart(self, **overrides) -> "ModelServer":
        """Stop, apply overrides (same names as the constructor), start again."""
        self.stop()
        self._apply_overrides(overrides)
        return self.start()

    def reload(self, timeout: float = 120, **overrides) -> "ModelServer":
        """Load the folder again in the running server, with overrides of the model's settings
        (``max_batch_size``, ``max_batch_time``, ``weights``, ``extra``), through MLServer's model
        repository API: seconds where ``restart()`` takes a new process. Overrides only a new
        process can apply (workers, ports, server settings) are refused: use ``restart()``. A
        folder whose settings.json or model name changed since the start is restarted."""
        unknown = set(overrides) - MODEL_LEVEL
        if unknown:
            raise TypeError(f"reload() changes model settings only ({', '.join(sorted(MODEL_LEVEL))}); "
                            f"use restart() for {', '.join(sorted(unknown))}")
        self._apply_overrides(overrides)
        if not self.running or self.copy is None or "settings.json" in self.changed_since_start():
            return self.restart()
        name = self.name
        self._read_model_settings()
        if self.name != name:
            return self.restart()
        self.copy.write(self.model_settings, self.options, self.ports)
        load_again(self, timeout)
        self.copy.remember_files(self.options)
        return self

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def command(self, folder: PathLike | None = None) -> list:
        """``mlserver start <folder>``, with the ``mlserver`` of this server's environment."""
        return [str(Path(self.options.python).parent / "mlserver"), "start", str(folder or self.model_dir)]

    def start_error(self, reason: str, settings: bool = False) -> ServerStartError:
        """A failed start's error: ``reason``, the student's own line first, then the log."""
        return start_error(reason, self.log, self.run_folder if self.copy else None,
                           self.model_settings if settings else None)

    # ----------------------------------------------------------- internals
    def _apply_overrides(self, overrides: dict) -> None:
        """Overrides by the constructor's names (``restart()``, ``reload()``): ports here, the
        rest into new options."""
        self.ports.update({key: value for key, value in overrides.items() if key in self.ports})
        self.options = self.options.replace(**{key: value for key, value in overrides.items()
                                               if key not in self.ports})

    def _read_model_settings(self) -> None:
        self.model_settings = folder_model_settings(self.model_dir, self.options)
        # MLServer names a model without a name after its folder (the run copy's has the same name).
        self.name = self.model_settings.get("name") or self.model_dir.name

    def _choose_ports(self) -> None:
        # Several graders side by side would race for the same default port: free ports only.
        self.ports = dict(choose_ports(self.ports, DEFAULT_PORTS, defaults_allowed=not config.free_ports_only()))


def running_server(model_dir: PathLike) -> ModelServer | None:
    """The server of ``model_dir`` this kernel started last from the folder's own settings
    and still runs, or None."""
    return cast("ModelServer | None", registry.running_server(resolve_model_dir(model_dir)))  # it holds ModelServers


def resolve_model_dir(model_dir: PathLike) -> Path:
    """``model_dir`` as given if it exists, else relative to the repository (``"tinyvit"``)."""
    path = Path(model_dir)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    return path.resolve()


def _in_notebook() -> bool:
    """Inside a Jupyter kernel (where re-running a start cell must replace the old server;
    tests and benchmarks run several servers of one folder side by side on purpose)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    return type(get_ipython()).__name__ == "ZMQInteractiveShell"


def _count_start(name: str, seconds: float, model_settings: dict) -> None:
    """One line per MLServer start, with its seconds until ready (or until it failed) and its
    kind, in the file ``$LAB_START_LOG`` names (``make test`` sums them up: starts are what
    makes the suite slow). The kind is what the server imports to serve: "engine" (ONNX
    Runtime or OpenVINO, no torch) or "torch" (every other runtime of the lab)."""
    start_log = config.start_log()
    if start_log:
        kind = "engine" if ".runtimes.engines." in str(model_settings.get("implementation", "")) else "torch"
        # Who started it: the pytest test, else (a notebook's kernel) the working directory.
        caller = os.environ.get("PYTEST_CURRENT_TEST") or os.getcwd()
        with open(start_log, "a") as handle:
            handle.write(f"{name}\t{seconds:.1f}\t{caller}\t{kind}\n")
