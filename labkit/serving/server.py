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

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import requests

from labkit import config
from labkit.paths import REPO_ROOT, PathLike
from labkit.serving import registry
from labkit.serving.processes import (die_with_parent, free_port, group_listens_on, pid_dir, port_is_free,
                                      remove_pid_file, stop_group, stop_orphans, wait_until, write_pid_file)
from labkit.serving.runcopy import (MODEL_LEVEL, ServerOptions, folder_model_settings, workers,
                                    write_run_copy)
from labkit.serving.startlog import (LOAD_FAILED_MARK, LOADED_MARK, PORT_TAKEN, SETTINGS_REFUSED_MARK, PortTaken,
                                     ServerStartError, StartInterrupted, first_error_in, last_exception,
                                     startup_lines)

DEFAULT_PORTS = {"http_port": 8080, "grpc_port": 8081, "metrics_port": 8082}
FREE_PORTS_ENV = config.FREE_PORTS  # on: never the default ports (grading runs side by side)
# Seconds MLServer gets to shut down after SIGTERM before its process group is SIGKILLed
# (labkit.serving.supervisor; MLServer can hang in its own shutdown).
SHUTDOWN_GRACE = 10
# Seconds a model may stay not ready after MLServer logged that it loaded it (in the main process,
# after its workers): longer, and its load() did not return True.
LOADED_BUT_NOT_READY = 5
# Imported from here by notebooks (04 catches a failed start and prints its cause).
__all__ = ["ModelServer", "ServerStartError", "PortTaken", "last_exception", "resolve_model_dir",
           "running_server", "DEFAULT_PORTS", "FREE_PORTS_ENV", "SHUTDOWN_GRACE"]


class ModelServer:
    """One MLServer process serving one model folder.

    The keyword arguments are the three ports (``None``: the default port when free) and
    the options of :class:`labkit.serving.runcopy.ServerOptions` (``None`` keeps the
    folder's own setting), kept as ``server.options``; ``restart()`` and ``reload()`` take the
    same names. The server runs a copy of the folder (``labkit.serving.runcopy``), reads its
    start in the log (``labkit.serving.startlog``) and is listed in ``labkit.serving.registry``
    while it runs.
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
        self.run_dir: Path | None = None
        self._final_log = ""
        self._started_files: dict = {}
        self.started_at = 0.0

    # ----------------------------------------------------------- addresses
    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http_port']}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.ports['grpc_port']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics_port']}/metrics"

    @property
    def model_url(self) -> str:
        return f"{self.http_url}/v2/models/{self.name}"

    @property
    def infer_url(self) -> str:
        return f"{self.model_url}/infer"

    @property
    def docs_url(self) -> str:
        return f"{self.http_url}/v2/docs"

    @property
    def run_folder(self) -> Path:
        """The copy of the model folder that MLServer runs (same name as the original)."""
        assert self.run_dir is not None, "no run copy before start()"
        return self.run_dir / self.model_dir.name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log(self) -> str:
        """Everything the server has printed so far (kept after ``stop()``)."""
        if self.run_dir is None or not (self.run_dir / "server.log").exists():
            return self._final_log
        return (self.run_dir / "server.log").read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    @property
    def scaling(self) -> dict:
        """What the server runs with for scaling: ``parallel_workers`` (settings.json, or the
        override given here), ``max_batch_size`` and ``max_batch_time`` (model-settings.json, or
        the overrides)."""
        def batching(key: str):
            override = getattr(self.options, key)
            return override if override is not None else self.model_settings.get(key, 0)

        return {"parallel_workers": workers(self.model_dir, self.options),
                "max_batch_size": batching("max_batch_size"), "max_batch_time": batching("max_batch_time")}

    def __repr__(self) -> str:
        state = f"running on {self.http_url}" if self.running else "stopped"
        try:
            scaling = self.scaling  # reads settings.json once
        except ServerStartError:  # the folder's settings.json does not read: its start says so
            scaling = {}
        knobs = ", ".join(f"{key}={value}" for key, value in scaling.items())
        return f"<ModelServer {self.name!r} {state} ({knobs})>"

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
            self._replace_servers_started_alike()
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
        run_dir = self.run_dir = Path(tempfile.mkdtemp(prefix=f"mlserver-lab-{self.name}-"))
        self._write_run_copy(self.run_folder)
        self._started_files = self._folder_digests()
        with open(run_dir / "server.log", "wb") as log_file:  # the child keeps its own copy
            self.process = process = subprocess.Popen(
                [sys.executable, "-m", "labkit.serving.supervisor", "--grace", str(SHUTDOWN_GRACE),
                 "--run-dir", str(run_dir), "--pid-dir", str(pid_dir()), "--",
                 *self.command(self.run_folder)],
                cwd=run_dir, stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self._environment(),
                start_new_session=True, preexec_fn=die_with_parent,
            )
        registry.add(self)
        self.started_at = time.monotonic()
        write_pid_file(process.pid, run_dir)
        try:
            self._wait_until_ready(timeout, progress)
        except BaseException as error:
            _count_start(self.name, time.monotonic() - self.started_at, self._kind())  # until it failed
            self.stop()
            if isinstance(error, KeyboardInterrupt) and not isinstance(error, StartInterrupted):
                # One line in the notebook, not the frames of the loop that waited.
                raise StartInterrupted(f"the start of {self.name} was interrupted; its server is stopped.") from None
            raise
        _count_start(self.name, time.monotonic() - self.started_at, self._kind())
        return self

    def _kind(self) -> str:
        """What the server imports to serve: "engine" (ONNX Runtime or OpenVINO, no torch) or
        "torch" (every other runtime of the lab); counted per start by ``make test``."""
        implementation = str((self.model_settings or {}).get("implementation", ""))
        return "engine" if ".runtimes.engines." in implementation else "torch"

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout`` s."""
        registry.discard(self)
        if self.process is None:
            return
        stop_group(self.process.pid, timeout, self.process)
        remove_pid_file(self.process.pid)
        if self.run_dir is not None and self.run_dir.exists():
            self._final_log = self.log
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def restart(self, **overrides) -> "ModelServer":
        """Stop, apply overrides (same names as the constructor), start again."""
        self.stop()
        self._apply_overrides(overrides)
        return self.start()

    def reload(self, timeout: float = 120, **overrides) -> "ModelServer":
        """Load the model folder again inside the running server, with overrides of the
        model's settings (``max_batch_size``, ``max_batch_time``, ``weights``, ``extra``):
        MLServer's model repository API unloads the model and loads it from a fresh run
        copy, which takes seconds where ``restart()`` takes a new process. Overrides only a
        new process can apply (workers, ports, server settings) are refused: use ``restart()``.
        A folder whose settings.json or model name changed since the start is restarted."""
        unknown = set(overrides) - MODEL_LEVEL
        if unknown:
            raise TypeError(f"reload() changes model settings only ({', '.join(sorted(MODEL_LEVEL))}); "
                            f"use restart() for {', '.join(sorted(unknown))}")
        self._apply_overrides(overrides)
        if not self.running or "settings.json" in self.changed_since_start():
            return self.restart()
        name = self.name
        self._read_model_settings()
        if self.name != name:
            return self.restart()
        shutil.rmtree(self.run_folder)
        self._write_run_copy(self.run_folder)
        repository = f"{self.http_url}/v2/repository/models/{self.name}"
        # Unload, then load: a plain load of a loaded model "reloads" it without setting up
        # adaptive batching again (MLServer 1.7.1), so new batching settings would be ignored.
        log_before = len(self.log)
        unloaded = requests.post(f"{repository}/unload", timeout=timeout)
        if unloaded.status_code not in (200, 404):  # 404: an earlier reload failed to load it
            unloaded.raise_for_status()
        answer = requests.post(f"{repository}/load", timeout=timeout)
        if answer.status_code != 200:
            raise self._start_error(f"MLServer could not load model {self.name!r} again "
                                    f"(HTTP {answer.status_code}: {answer.text[:300]})")
        self._wait_until_ready(timeout, progress=False, log_from=log_before)
        self._started_files = self._folder_digests()
        return self

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def command(self, folder: PathLike | None = None) -> list:
        """``mlserver start <folder>``, with the ``mlserver`` of this server's environment."""
        return [str(Path(self.options.python).parent / "mlserver"), "start", str(folder or self.model_dir)]

    def startup_lines(self) -> str:
        """The lines of MLServer's log that say where it listens and what it loaded."""
        return startup_lines(self.log)

    def started_version(self) -> str:
        """A digest of the folder's files as this server started (or reloaded) them: the same
        files, the same version, whatever server runs them."""
        return hashlib.sha256(repr(sorted(self._started_files.items())).encode()).hexdigest()[:16]

    def changed_since_start(self) -> list:
        """Files of the model folder written after this server started: it still runs the
        old version of them until ``restart()``."""
        if not self.running:
            return []
        now = self._folder_digests()
        return sorted(name for name in set(now) | set(self._started_files)
                      if now.get(name) != self._started_files.get(name))

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

    def _folder_digests(self) -> dict:
        # Given model settings replace the folder's file: its edits do not make the server stale.
        ignored = {"model-settings.json"} if self.options.model_settings is not None else set()
        return {str(path.relative_to(self.model_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(self.model_dir.rglob("*"))
                if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")
                and path.stat().st_size < (1 << 20) and str(path.relative_to(self.model_dir)) not in ignored}

    def _config(self) -> tuple:
        """What a start cell asks for: the same folder with the same options."""
        return self.model_dir, self.options

    def _replace_servers_started_alike(self) -> None:
        """Re-running a notebook's start cell after an edit must not leave the old server
        (old code, its memory, its ports) running beside the new one. A server of the same
        folder with other settings (batching on, say) may run beside it on purpose."""
        for other in registry.servers():
            if other is not self and other._config() == self._config() and other.running:
                print(f"Stopping the server this kernel already runs for {self.model_dir.name}/ "
                      f"(on {other.http_url}, started with the files as they were then).")
                other.stop()

    def _choose_ports(self) -> None:
        taken = set()
        # Several graders side by side would race for the same default port: free ports only.
        defaults_allowed = not config.free_ports_only()
        for key, default in DEFAULT_PORTS.items():
            port = self.ports[key]
            if port is None or port == 0 or not port_is_free(port):
                use_default = port is None and defaults_allowed and port_is_free(default)
                port = default if use_default else free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            self.ports[key] = port

    def _write_run_copy(self, target: Path) -> None:
        write_run_copy(self.model_dir, target, self.model_settings, self.options, self.ports)

    def _environment(self) -> dict:
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLSERVER_")}
        env.update(self.options.env)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _wait_until_ready(self, timeout: float, progress: bool, log_from: int = 0) -> None:
        from tqdm.auto import tqdm

        ready_url = f"{self.model_url}/ready"
        started = time.monotonic()
        bar = tqdm(total=int(timeout), desc=f"starting {self.name}", unit="s",
                   disable=not progress, leave=False,
                   bar_format="{desc}: {elapsed} (timeout {total}s)")

        loaded = {"count": 0, "since": 0.0}  # the "Loaded model" lines seen, and since when
        process = self.process
        assert process is not None, "started by _launch()"

        def ready() -> bool:
            log = self.log[log_from:]
            taken = PORT_TAKEN.search(log)
            if taken:
                port = taken.group(1) or taken.group(2)
                raise PortTaken(f"port {port} was taken by another program while {self.name} started")
            if process.poll() is not None:
                raise self._start_error(f"MLServer exited with code {process.returncode}")
            if SETTINGS_REFUSED_MARK in log:
                # MLServer refused the file and runs on with no model: say so now, not at the timeout.
                wait_until(lambda: "validation error" in self.log[log_from:].split(SETTINGS_REFUSED_MARK, 1)[-1]
                           or process.poll() is not None, timeout=3)
                time.sleep(0.2)  # the rest of the traceback
                raise self._start_error(f"MLServer refused {self.model_dir.name}/model-settings.json and serves "
                                        "no model", settings=True)
            if LOAD_FAILED_MARK in log:
                # MLServer logs "Couldn't load model" before the traceback that says why.
                wait_until(lambda: "Traceback" in self.log[log_from:].split(LOAD_FAILED_MARK, 1)[-1]
                           or process.poll() is not None, timeout=5)
                time.sleep(0.2)  # the rest of the traceback
                raise self._start_error(f"MLServer could not load model {self.name!r}")
            bar.n = min(int(time.monotonic() - started), bar.total)
            bar.refresh()
            count = log.count(LOADED_MARK.format(name=self.name))
            if count != loaded["count"]:
                loaded.update(count=count, since=time.monotonic())
            try:
                if requests.get(ready_url, timeout=2).status_code != 200:
                    if count and time.monotonic() - loaded["since"] > LOADED_BUT_NOT_READY:
                        raise self._start_error(
                            f"MLServer ran load() of model {self.name!r}, but the model is not ready: MLServer "
                            "serves a model only when its load() returns True, and this one returned "
                            "something else (False, or nothing)")
                    return False
            except requests.RequestException:
                return False
            http_port = cast(int, self.ports["http_port"])  # chosen by _choose_ports()
            if group_listens_on(process.pid, http_port) is False:
                # Someone else's server answered: same model name, another user's process.
                raise PortTaken(f"port {self.ports['http_port']} was taken by another server while "
                                f"{self.name} started (on a shared machine, perhaps another user's)")
            return True

        try:
            if not wait_until(ready, timeout, interval=0.25):
                raise self._start_error(f"model {self.name!r} not ready after {timeout:.0f} s")
            # A notebook bar closed below its total turns red and stays: mark it complete
            # so that it disappears.
            bar.n = bar.total
        finally:
            bar.close()

    def _start_error(self, reason: str, settings: bool = False) -> ServerStartError:
        # The student's own file and line first: the log's last traceback is often MLServer
        # cleaning up (unloading a model that never loaded), not the cause. For refused
        # settings, what MLServer refused in the student's terms.
        if settings:
            from labkit.serving.mlserver_settings import refused

            yours = "\n  ".join(refused(self.model_settings, "model-settings"))
            yours = f"\nIn your model-settings.json: {yours}" if yours else ""
        else:
            yours = first_error_in(self.log, self.run_folder) if self.run_dir is not None else ""
            yours = f"\nIn your code: {yours}" if yours else ""
        cause = last_exception(self.log)
        cause = f"\nCause: {cause}" if cause else ""
        return ServerStartError(f"{reason}.{yours}{cause}\nLast lines of the server log:\n{self.log_tail()}")


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


def _count_start(name: str, seconds: float, kind: str) -> None:
    """One line per MLServer start, with its seconds until ready (or until it failed), in the
    file ``$LAB_START_LOG`` names (``make test`` sums them up: starts are what makes the suite
    slow)."""
    start_log = config.start_log()
    if start_log:
        # Who started it: the pytest test, else (a notebook's kernel) the working directory.
        caller = os.environ.get("PYTEST_CURRENT_TEST") or os.getcwd()
        with open(start_log, "a") as handle:
            handle.write(f"{name}\t{seconds:.1f}\t{caller}\t{kind}\n")
