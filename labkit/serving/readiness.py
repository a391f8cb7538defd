"""Waiting for a started (or reloaded) MLServer to serve its model, and failing fast with the cause.

``/v2/health/ready`` says 200 even after a failed load, so the wait asks the model's own
``/v2/models/<name>/ready`` and reads the log as it grows: a refused settings file, a load
that raised, a port another program took, a load() that did not return True, or a process
that exited end the wait at once with the cause, not at the timeout.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

import requests

from labkit.serving.processes import group_listens_on, wait_until
from labkit.serving.startlog import LOAD_FAILED_MARK, LOADED_MARK, PORT_TAKEN, SETTINGS_REFUSED_MARK, PortTaken

if TYPE_CHECKING:
    from labkit.serving.server import ModelServer

# Seconds a model may stay not ready after MLServer logged that it loaded it (in the main process,
# after its workers): longer, and its load() did not return True.
LOADED_BUT_NOT_READY = 5


def wait_until_model_ready(server: ModelServer, timeout: float, progress: bool, log_from: int = 0) -> None:
    """Wait until ``server``'s model answers ready, reading the log from ``log_from`` on (a
    reload's part of it); :class:`ServerStartError` with the cause if it cannot be, or after
    ``timeout`` seconds (a progress line meanwhile, unless ``progress`` is false)."""
    from tqdm.auto import tqdm

    process = server.process
    assert process is not None, "started by ModelServer.start()"
    ready_url, name = f"{server.model_url}/ready", server.name
    started = time.monotonic()
    bar = tqdm(total=int(timeout), desc=f"starting {name}", unit="s", disable=not progress, leave=False,
               bar_format="{desc}: {elapsed} (timeout {total}s)")
    loaded = {"count": 0, "since": 0.0}  # the "Loaded model" lines seen, and since when

    def after(mark: str, then: str, seconds: float) -> None:
        """Wait for the rest of what MLServer logs after ``mark`` (``then`` or its exit)."""
        wait_until(lambda: then in server.log[log_from:].split(mark, 1)[-1] or process.poll() is not None,
                   timeout=seconds)
        time.sleep(0.2)  # the rest of the traceback

    def ready() -> bool:
        log = server.log[log_from:]
        taken = PORT_TAKEN.search(log)
        if taken:
            raise PortTaken(f"port {taken.group(1) or taken.group(2)} was taken by another program while "
                            f"{name} started")
        if process.poll() is not None:
            raise server.start_error(f"MLServer exited with code {process.returncode}")
        if SETTINGS_REFUSED_MARK in log:
            # MLServer refused the file and runs on with no model: say so now, not at the timeout.
            after(SETTINGS_REFUSED_MARK, "validation error", 3)
            raise server.start_error(f"MLServer refused {server.model_dir.name}/model-settings.json and serves "
                                     "no model", settings=True)
        if LOAD_FAILED_MARK in log:
            # MLServer logs "Couldn't load model" before the traceback that says why.
            after(LOAD_FAILED_MARK, "Traceback", 5)
            raise server.start_error(f"MLServer could not load model {name!r}")
        bar.n = min(int(time.monotonic() - started), bar.total)
        bar.refresh()
        count = log.count(LOADED_MARK.format(name=name))
        if count != loaded["count"]:
            loaded.update(count=count, since=time.monotonic())
        try:
            if requests.get(ready_url, timeout=2).status_code != 200:
                if count and time.monotonic() - loaded["since"] > LOADED_BUT_NOT_READY:
                    raise server.start_error(
                        f"MLServer ran load() of model {name!r}, but the model is not ready: MLServer "
                        "serves a model only when its load() returns True, and this one returned "
                        "something else (False, or nothing)")
                return False
        except requests.RequestException:
            return False
        if group_listens_on(process.pid, cast(int, server.ports["http_port"])) is False:
            # Someone else's server answered: same model name, another user's process.
            raise PortTaken(f"port {server.ports['http_port']} was taken by another server while "
                            f"{name} started (on a shared machine, perhaps another user's)")
        return True

    try:
        if not wait_until(ready, timeout, interval=0.25):
            raise server.start_error(f"model {name!r} not ready after {timeout:.0f} s")
        # A notebook bar closed below its total turns red and stays: mark it complete so that
        # it disappears.
        bar.n = bar.total
    finally:
        bar.close()


def load_again(server: ModelServer, timeout: float) -> None:
    """Unload ``server``'s model and load it from its run copy (as rewritten) through MLServer's
    model repository API, then wait until it is ready."""
    repository = f"{server.http_url}/v2/repository/models/{server.name}"
    # Unload, then load: a plain load of a loaded model "reloads" it without setting up
    # adaptive batching again (MLServer 1.7.1), so new batching settings would be ignored.
    log_before = len(server.log)
    unloaded = requests.post(f"{repository}/unload", timeout=timeout)
    if unloaded.status_code not in (200, 404):  # 404: an earlier reload failed to load it
        unloaded.raise_for_status()
    answer = requests.post(f"{repository}/load", timeout=timeout)
    if answer.status_code != 200:
        raise server.start_error(f"MLServer could not load model {server.name!r} again "
                                 f"(HTTP {answer.status_code}: {answer.text[:300]})")
    wait_until_model_ready(server, timeout, progress=False, log_from=log_before)
