"""A real JupyterHub for the class test (tests/test_jupyterhub.py): Unix users, the hub and
its proxy on loopback, and the users' processes as the machine sees them.

The hub is JupyterHub from PyPI with configurable-http-proxy from npm (`make test` installs
it in .lab/node) and its local-process spawner: each user's JupyterLab runs as that user.
Everything here needs root (useradd, a hub that switches users).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from labkit.serving.processes import free_port, stop_group, total_memory, wait_until
from tests.helpers.lab import REPO

VENV_BIN = Path(sys.executable).parent
PROXY = REPO / ".lab" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
SERVICE_NAME = "class-test"


def missing_tools() -> str | None:
    """Why this machine cannot run a hub of real users, or None."""
    if os.geteuid() != 0:
        return "needs root: it creates Unix users and runs a hub that switches to them"
    if not shutil.which("useradd") or not shutil.which("runuser"):
        return "needs useradd and runuser"
    if not PROXY.exists():
        return f"no configurable-http-proxy at {PROXY}: `make test` installs it with npm"
    if not (VENV_BIN / "jupyterhub").exists():
        return "no jupyterhub in the venv (requirements.txt)"
    return None


# ------------------------------------------------------------------ Unix users
def create_user(name: str, homes: Path) -> pwd.struct_passwd:
    """A new Unix user with a home under ``homes`` and useradd's default home mode."""
    remove_user(name)  # left over from a run that was killed
    subprocess.run(["useradd", "--create-home", "--home-dir", str(homes / name), "--shell", "/bin/bash",
                    "--user-group", name], check=True, capture_output=True)
    return pwd.getpwnam(name)


def remove_user(name: str) -> None:
    """Kill what the user still runs, remove their files in the temp dir, then the user."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    subprocess.run(["pkill", "-KILL", "-U", str(uid)], capture_output=True)
    wait_until(lambda: not processes_of(uid), 10)
    for path in temp_files_of(uid):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)


def run_as(user: str, code: str, arguments: dict, timeout: float = 60) -> dict:
    """Run Python ``code`` as ``user`` with the lab's venv; it reads ``ARGS`` (a dict) and
    prints one JSON line, which is returned."""
    program = f"import json, sys\nARGS = json.loads(sys.argv[1])\n{code}"
    done = subprocess.run(["runuser", "-u", user, "--", sys.executable, "-c", program, json.dumps(arguments)],
                          capture_output=True, text=True, timeout=timeout, cwd="/")
    assert done.returncode == 0, f"as {user}: {done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


class OpenedFolders:
    """Lets other users traverse the folders that hold the lab's Python, venv and checkout
    (o+x, no listing), the way a hub installs one environment for everyone; ``restore()``
    puts every mode back."""

    def __init__(self, paths: list[Path]):
        self.changed: list[tuple[Path, int]] = []
        for path in paths:
            for folder in [*reversed(path.resolve().parents), path.resolve()]:
                mode = folder.stat().st_mode
                if folder.is_dir() and not mode & 0o001:
                    self.changed.append((folder, mode & 0o7777))
                    folder.chmod((mode & 0o7777) | 0o001)

    def restore(self) -> None:
        for folder, mode in reversed(self.changed):
            folder.chmod(mode)


# ------------------------------------------------------------------ what users run
def processes_of(uid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.uids().real == uid:
                found.append(process)
        except psutil.Error:
            pass
    return found


def memory_of(uid: int) -> int:
    """PSS (bytes) of all the user's processes."""
    return total_memory(processes_of(uid))


def mlserver_ports(uid: int) -> dict[int, set[int]]:
    """The TCP ports each of the user's MLServer processes listens on, by pid."""
    ports = {}
    for process in processes_of(uid):
        try:
            if "mlserver" not in " ".join(process.cmdline()):
                continue
            listening = {conn.laddr.port for conn in process.net_connections("tcp") if conn.status == "LISTEN"}
        except psutil.Error:
            continue
        if listening:
            ports[process.pid] = listening
    return ports


def listener_uid(port: int | None) -> int | None:
    """The uid of the process listening on TCP ``port`` of loopback (None: nobody)."""
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            try:
                return psutil.Process(conn.pid).uids().real
            except psutil.Error:
                return None
    return None


def temp_files_of(uid: int) -> list[Path]:
    """Entries directly in the temp dir that belong to ``uid``."""
    found = []
    for path in Path(tempfile.gettempdir()).iterdir():
        try:
            if path.lstat().st_uid == uid:
                found.append(path)
        except OSError:
            pass
    return found


@dataclass
class MemorySampler:
    """Samples the users' memory and MLServer ports every ``interval`` s, in a thread
    between ``start()`` and ``stop()``, and keeps the peaks."""
    uids: dict[str, int]
    interval: float = 2.0
    peak_per_user: dict[str, int] = field(default_factory=dict)
    peak_total: int = 0
    ports_seen: dict[str, dict[int, set[int]]] = field(default_factory=dict)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "MemorySampler":
        def sample_until_done() -> None:
            while not self._done.wait(self.interval):
                self.sample()

        self._thread = threading.Thread(target=sample_until_done, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def sample(self) -> None:
        total = 0
        for user, uid in self.uids.items():
            used = memory_of(uid)
            total += used
            self.peak_per_user[user] = max(self.peak_per_user.get(user, 0), used)
            for pid, ports in mlserver_ports(uid).items():
                self.ports_seen.setdefault(user, {}).setdefault(pid, set()).update(ports)
        self.peak_total = max(self.peak_total, total)


# ------------------------------------------------------------------ the hub
HUB_CONFIG = """\
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {folder!r} + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {folder!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {folder!r} + "/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.services = [{{"name": {service!r}, "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": {service!r}, "services": [{service!r}],
    "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "list:users", "read:users"]}}]
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab"
c.Spawner.environment = {environment!r}
# Each user counts their MLServer starts in a file of their own (see start_log()).
c.Spawner.environment["LAB_START_LOG"] = lambda spawner: {folder!r} + f"/starts-{{spawner.user.name}}.log"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.JupyterHub.cleanup_servers = True
"""


class Hub:
    """JupyterHub on a free loopback port; ``api`` is a session with the test's admin token."""

    def __init__(self, folder: Path, users: list[str], environment: dict):
        self.folder, self.port, token = folder, free_port(), secrets.token_hex(24)
        config = HUB_CONFIG.format(
            port=self.port, hub_port=free_port(), proxy_api_port=free_port(), proxy=str(PROXY),
            folder=str(folder), users=set(users), service=SERVICE_NAME, token=token,
            singleuser=str(VENV_BIN / "jupyterhub-singleuser"), environment=environment)
        (folder / "jupyterhub_config.py").write_text(config)
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"token {token}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Hub":
        path = f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"  # node for the proxy
        with open(self.folder / "hub.log", "wb") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "jupyterhub"), "-f", str(self.folder / "jupyterhub_config.py")],
                cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PATH": path}, start_new_session=True)

        def answers() -> bool:
            try:
                return self.api.get(f"{self.url}/hub/api/", timeout=5).ok
            except requests.ConnectionError:
                return False

        if not wait_until(answers, 120, interval=0.5):
            raise RuntimeError(f"JupyterHub did not answer:\n{self.log[-3000:]}")
        return self

    def start_log(self, user: str) -> Path:
        """Where ``user``'s kernels count their MLServer starts (labkit's LAB_START_LOG)."""
        return self.folder / f"starts-{user}.log"

    @property
    def log(self) -> str:
        path = self.folder / "hub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_server(self, user: str, timeout: float = 240) -> None:
        """Start the user's JupyterLab as the browser's "Start my server" does; wait until ready."""
        self.api.post(f"{self.url}/hub/api/users/{user}", timeout=30)  # 201, or 409 if there
        answer = self.api.post(f"{self.url}/hub/api/users/{user}/server", timeout=60)
        assert answer.status_code in (201, 202), answer.text
        assert wait_until(lambda: self.server_state(user).get("ready"), timeout, interval=1), \
            f"{user}'s server did not get ready:\n{self.log[-3000:]}"

    def server_state(self, user: str) -> dict:
        return self.api.get(f"{self.url}/hub/api/users/{user}", timeout=30).json().get("servers", {}).get("", {})

    def stop_server(self, user: str, timeout: float = 120) -> None:
        answer = self.api.delete(f"{self.url}/hub/api/users/{user}/server", timeout=60)
        assert answer.status_code in (202, 204), answer.text
        assert wait_until(lambda: not self.server_state(user), timeout, interval=1), f"{user}'s server did not stop"

    def user_token(self, user: str) -> str:
        answer = self.api.post(f"{self.url}/hub/api/users/{user}/tokens", timeout=30,
                               json={"note": "class test", "expires_in": 7200})
        assert answer.status_code == 201, answer.text
        return answer.json()["token"]

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid, 60, self.process)
