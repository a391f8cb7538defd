"""The run copy: the folder MLServer really runs, with the lab's options applied.

A server never runs the student's folder itself. It runs a copy in a temporary folder, in
which ``model-settings.json`` and ``settings.json`` are rewritten from the folder's own files
and the :class:`ServerOptions` a notebook or a test asked for. This module is the one place
that says how: follow ``max_batch_size`` from ``ModelServer(..., max_batch_size=8)`` to
:func:`run_model_settings`, which writes it where MLServer reads it. The student's files stay
as they wrote them; :func:`settings_changes` says what the copy changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from labkit.paths import PathLike

# Options MLServer applies per model (a reload in the running server takes them); the rest
# need a new process.
MODEL_LEVEL = frozenset({"max_batch_size", "max_batch_time", "weights", "extra"})
_MAPPINGS = ("extra", "server_settings", "env")


@dataclass(frozen=True)
class ServerOptions:
    """What a start asks for beyond the folder; ``None`` keeps the folder's own setting.

    ``parallel_workers`` (settings.json); ``max_batch_size`` and ``max_batch_time``
    (adaptive batching, model-settings.json); ``weights`` (a checkpoint, becomes
    ``parameters.uri``); ``extra`` (merged into ``parameters.extra``); ``server_settings``
    (other settings.json fields, e.g. ``{"gzip_enabled": True}``); ``env`` (environment
    variables); ``python`` (the interpreter of an environment with MLServer); and
    ``model_settings`` (the copy's whole model-settings.json instead of the folder's: a check
    that grades a service on its own, whatever the student's settings files say; the folder's
    settings.json is then left out too, MLServer's defaults apply)."""

    parallel_workers: int | None = None
    max_batch_size: int | None = None
    max_batch_time: float | None = None
    weights: PathLike | None = None
    extra: dict = field(default_factory=dict)
    server_settings: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    python: str = sys.executable
    model_settings: dict | None = None

    def __post_init__(self) -> None:
        # Copies, so that a caller's dict changed later does not change a running server's options.
        for name in _MAPPINGS:
            object.__setattr__(self, name, dict(getattr(self, name) or {}))
        object.__setattr__(self, "python", str(self.python or sys.executable))
        if self.model_settings is not None:
            object.__setattr__(self, "model_settings", dict(self.model_settings))

    def replace(self, **overrides) -> ServerOptions:
        """These options with ``overrides`` (the constructor's names); an unknown name is a TypeError."""
        unknown = set(overrides) - {option.name for option in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown override {sorted(unknown)[0]!r}")
        return dataclasses.replace(self, **overrides)


def _json_object(path: Path, consequence: str, fix: str) -> dict:
    """A settings file that must hold a JSON object; one that does not stops the start with its
    name and line (ServerStartError): ``consequence`` says what MLServer would do, ``fix`` what
    the student does (each file's own words)."""
    from labkit.serving.startlog import ServerStartError

    text, where = path.read_text(), f"{path.parent.name}/{path.name}"
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        what = "is empty" if not text.strip() else (f"is not valid JSON: {error.msg} (line {error.lineno}, "
                                                    f"column {error.colno})")
        raise ServerStartError(f"{where} {what}: {consequence}. {fix}") from None
    if not isinstance(content, dict):
        raise ServerStartError(f"{where} holds a JSON {type(content).__name__}, not an object: {consequence}.")
    return content


def read_settings_file(path: Path) -> dict:
    """A JSON settings file as a dict; {} when there is none (MLServer's defaults apply). One
    that is not a JSON object stops the start with its name and line (ServerStartError)."""
    if not path.is_file():
        return {}
    return _json_object(path, "MLServer would not start",
                        "Fix the file, run its cell, then start the server again.")


def _folder_server_settings(model_dir: Path, options: ServerOptions) -> dict:
    """The folder's settings.json, unless the start grades a service on its own (``model_settings``)."""
    return {} if options.model_settings is not None else read_settings_file(model_dir / "settings.json")


def folder_model_settings(model_dir: Path, options: ServerOptions) -> dict:
    """The model settings the copy starts from: the given ones, else the folder's file."""
    if options.model_settings is not None:
        return dict(options.model_settings)
    path = model_dir / "model-settings.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} has no model-settings.json")
    return _json_object(path, "MLServer would find no model in it",
                        "Write the file, run its cell, then start the server again.")


def workers(model_dir: Path, options: ServerOptions) -> int:
    """The parallel workers the server runs: the option, else settings.json, else MLServer's 1."""
    if options.parallel_workers is not None:
        return options.parallel_workers
    return _folder_server_settings(model_dir, options).get("parallel_workers", 1)


def scaling(model_dir: Path, model_settings: dict, options: ServerOptions) -> dict:
    """What a server of the folder runs with for scaling: ``parallel_workers`` (settings.json,
    or the option), ``max_batch_size`` and ``max_batch_time`` (model-settings.json, or the options)."""
    def batching(key: str):
        override = getattr(options, key)
        return override if override is not None else model_settings.get(key, 0)

    return {"parallel_workers": workers(model_dir, options),
            "max_batch_size": batching("max_batch_size"), "max_batch_time": batching("max_batch_time")}


def run_model_settings(model_dir: Path, model_settings: dict, options: ServerOptions) -> dict:
    """model-settings.json as the copy has it: batching and weights overridden, the uri
    resolved against the student's folder, and the worker count in ``parameters.extra``."""
    settings = dict(model_settings)
    given = settings.get("parameters") or {}
    if not isinstance(given, dict) or not isinstance(given.get("extra") or {}, dict) \
            or not isinstance(given.get("uri") or "", str):
        # MLServer refuses such a file, by its field, and the start says so (helper session 17: the
        # lab's own TypeError on "extra" as text came first, a traceback through labkit)
        return settings
    parameters = dict(given)
    uri = options.weights or parameters.get("uri")
    if uri:
        # Resolve against the student's folder, not the run copy.
        parameters["uri"] = str((model_dir / uri).resolve())
    # The service cannot see settings.json: tell it how many workers share the cores.
    parameters["extra"] = {**(parameters.get("extra") or {}), "parallel_workers": workers(model_dir, options),
                           **options.extra}
    settings["parameters"] = parameters
    for key in ("max_batch_size", "max_batch_time"):
        if getattr(options, key) is not None:
            settings[key] = getattr(options, key)
    return settings


def run_server_settings(model_dir: Path, options: ServerOptions, ports: dict) -> dict:
    """settings.json as the copy has it: loopback, the chosen ports, debug off unless set."""
    settings = _folder_server_settings(model_dir, options)
    settings.update(options.server_settings)
    settings.update(ports, host="127.0.0.1")  # gRPC binds to `host` too
    settings.setdefault("debug", False)
    if options.parallel_workers is not None:
        settings["parallel_workers"] = options.parallel_workers
    if isinstance(settings.get("logging_settings"), str):
        # MLServer reads it from where it starts: `mlserver start <folder>` runs beside the folder,
        # the run copy in a temporary folder.
        settings["logging_settings"] = str(model_dir.parent / settings["logging_settings"])
    return settings


def write_run_copy(model_dir: Path, target: Path, model_settings: dict, options: ServerOptions,
                   ports: dict) -> None:
    """Copy ``model_dir`` to ``target`` and write both settings files as MLServer will read them."""
    # symlinks=True: a linked checkpoint stays a link instead of a 20 MB copy per start.
    shutil.copytree(model_dir, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    (target / "model-settings.json").write_text(
        json.dumps(run_model_settings(model_dir, model_settings, options), indent=2))
    (target / "settings.json").write_text(json.dumps(run_server_settings(model_dir, options, ports), indent=2))


class RunCopy:
    """One start's copy of a model folder in a temporary folder, with MLServer's log beside it
    (``server.log``), and the digests of the student's files it was made from: what a
    server runs, and whether the folder changed since. ``remove()`` deletes the copy and keeps
    the log's text."""

    def __init__(self, model_dir: Path, name: str):
        self.model_dir = model_dir
        self.dir = Path(tempfile.mkdtemp(prefix=f"mlserver-lab-{name}-"))
        self.folder = self.dir / model_dir.name  # the same name as the original
        self.started_files: dict[str, str] = {}
        self._final_log = ""

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def log(self) -> str:
        """What the server has printed so far (kept after ``remove()``)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else self._final_log

    def write(self, model_settings: dict, options: ServerOptions, ports: dict) -> None:
        """The copy as MLServer will read it (again before a reload), from the folder as it is now."""
        if self.folder.exists():
            shutil.rmtree(self.folder)
        write_run_copy(self.model_dir, self.folder, model_settings, options, ports)

    def remember_files(self, options: ServerOptions) -> None:
        """The folder's files as the server runs them now (after a start or a reload that worked)."""
        self.started_files = folder_digests(self.model_dir, options)

    def changed(self, options: ServerOptions) -> list[str]:
        """The folder's files written since the copy was made: the server still runs the old ones."""
        now = folder_digests(self.model_dir, options)
        return sorted(name for name in set(now) | set(self.started_files)
                      if now.get(name) != self.started_files.get(name))

    def remove(self) -> None:
        if self.dir.exists():
            self._final_log = self.log
            shutil.rmtree(self.dir, ignore_errors=True)


def folder_digests(model_dir: Path, options: ServerOptions) -> dict[str, str]:
    """The sha256 of each of the folder's files a server reads (not caches, hidden files, or
    files of 1 MB and more, such as weights)."""
    # Given model settings replace the folder's file: its edits do not make the server stale.
    ignored = {"model-settings.json"} if options.model_settings is not None else set()
    return {str(path.relative_to(model_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(model_dir.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")
            and path.stat().st_size < (1 << 20) and str(path.relative_to(model_dir)) not in ignored}


# The address settings the lab sets in the run copy, with MLServer 1.7.1's defaults.
SETTINGS_THE_LAB_SETS = {"host": "0.0.0.0", "http_port": 8080, "grpc_port": 8081, "metrics_port": 8082}


def settings_changes(mine: Path, run: Path) -> list[str]:
    """``key: yours -> run`` for the address settings the lab set in the run copy to other
    values than yours (or than MLServer's default, where you set none)."""
    def read(path: Path) -> dict:
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return content if isinstance(content, dict) else {}

    yours, running = read(mine), read(run)
    changes = []
    for key, default in SETTINGS_THE_LAB_SETS.items():
        before = yours.get(key, default)
        if key in running and before != running[key]:
            shown = before if key in yours else f"{before} (MLServer's default)"
            changes.append(f"{key}: {shown} -> {running[key]}")
    return changes
