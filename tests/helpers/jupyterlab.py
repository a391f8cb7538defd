"""JupyterLab as `make lab` starts it, for the tests: the same command line and the
same environment (`make -n lab`, `make -s lab-env`), on a free port."""

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests
import websocket

from labkit.serving.processes import free_port, group_alive, stop_group, wait_until
from tests.helpers.lab import REPO


def lab_environment(folder: Path = REPO) -> dict:
    """The variables the Makefile exports to every recipe (Jupyter/IPython/matplotlib state in .lab/)."""
    done = subprocess.run(["make", "-s", "--no-print-directory", "lab-env"], cwd=folder, capture_output=True,
                          text=True, check=True)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def make_lab_command(port: int, folder: Path = REPO) -> list:
    """The `jupyter lab` line of the Makefile's `lab` target, for this port (without the
    variables it sets in front: :func:`make_lab_path` has its PATH)."""
    words = _make_lab_line(port, folder).split()
    return [word for word in words if not re.match(r"^[A-Z_]+=", word) and word != "exec"]


def make_lab_path(folder: Path = REPO) -> str:
    """The PATH the `lab` target gives JupyterLab (its kernels and terminals)."""
    match = re.search(r'PATH="([^"]*)"', _make_lab_line(free_port(), folder))
    assert match, "the lab target sets no PATH"
    return match.group(1).replace("$PATH", os.environ.get("PATH", ""))


def _make_lab_line(port: int, folder: Path) -> str:
    done = subprocess.run(["make", "-n", "lab", f"LAB_PORT={port}"], cwd=folder, capture_output=True, text=True)
    return next(line for line in done.stdout.replace("\\\n", " ").splitlines() if "jupyter lab" in line)


def wait_until_answering(port: int, token: str, timeout: float = 30) -> None:
    """The URL is printed a moment before the server takes connections."""
    def answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/api/status", params={"token": token}, timeout=5).ok
        except requests.ConnectionError:
            return False

    assert wait_until(answers, timeout, interval=0.2), "JupyterLab printed its URL but does not answer"


@contextmanager
def running_lab(env: dict = None, notebook_dir: Path = None, folder: Path = REPO, through_make: bool = False):
    """Start JupyterLab as `make lab` would in ``folder`` (the repository, or a student
    hand-out); yield (process, port, url with token). ``notebook_dir`` replaces the
    Makefile's notebooks/ folder; ``env`` is added to the environment. ``through_make``
    runs `make lab` itself, with none of the lab's variables inherited (the Makefile must
    export them). The server and its kernels are stopped at the end."""
    port = free_port()
    if through_make:
        assert notebook_dir is None, "`make lab` serves its own notebooks/ folder"
        inherited = {name: value for name, value in os.environ.items() if name not in lab_environment(folder)}
        command, environment = ["make", "--no-print-directory", "lab", f"LAB_PORT={port}"], {**inherited, **(env or {})}
    else:
        command = make_lab_command(port, folder)
        command[0] = str(Path(sys.executable).parent / "jupyter")
        if notebook_dir is not None:
            command = [f"--notebook-dir={notebook_dir}" if part.startswith("--notebook-dir=") else part
                       for part in command]
        environment = {**os.environ, **lab_environment(folder), "PATH": make_lab_path(folder), **(env or {})}
    process = subprocess.Popen(command, cwd=folder, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
            match = re.search(rf"(http://127\.0\.0\.1:{port}/lab\?token=\w+)", line)
            url = match.group(1) if match else None
        assert url, "JupyterLab did not print its URL with a token"
        # Keep reading its output so that a full pipe never blocks the server.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        wait_until_answering(port, url.split("token=")[1])
        yield process, port, url
    finally:
        stop_group(process.pid, 20, process)
        assert not group_alive(process.pid), "JupyterLab outlived its stop"


def execute_in_kernel(channels_url: str, code: str, headers: dict | None = None, timeout: float = 60,
                      user_expressions: dict | None = None) -> dict:
    """Run ``code`` in a kernel over its websocket (``.../api/kernels/<id>/channels``), as
    the browser does; return the execute_reply's content (``status``, and on an error
    ``ename``, ``evalue``, ``traceback``; ``user_expressions``: each expression's value
    afterwards, ``["data"]["text/plain"]``). ``timeout``: the longest wait for one message."""
    session, msg_id = uuid.uuid4().hex, uuid.uuid4().hex
    channel = websocket.create_connection(channels_url, timeout=timeout, header=headers or {})
    try:
        channel.send(json.dumps({
            "channel": "shell", "parent_header": {}, "metadata": {}, "buffers": [],
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session,
                       "username": "student", "version": "5.3", "date": ""},
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": user_expressions or {},
                        "allow_stdin": False, "stop_on_error": True}}))
        while True:
            message = json.loads(channel.recv())
            if message["msg_type"] == "execute_reply" and message["parent_header"].get("msg_id") == msg_id:
                return message["content"]
    finally:
        channel.close()
