"""Reading MLServer's log while it starts: what went wrong, in the student's words first.

A failed start raises :class:`ServerStartError`, whose message names the student's own file
and line (:func:`first_error_in`) before the log's last exception and its tail: the last
traceback in the log is often MLServer cleaning up (unloading a model that never loaded),
not the cause. :class:`PortTaken` is the one start failure the lab retries itself.
"""

from __future__ import annotations

import re
from pathlib import Path

# MLServer logs this before the traceback that says why a model did not load.
LOAD_FAILED_MARK = "Couldn't load model"
# ... and this when it refuses a model-settings.json (then it runs on, serving no model).
SETTINGS_REFUSED_MARK = "Failed load model settings"
# ... and this once load() returned, whatever it returned (not ready unless it was True).
LOADED_MARK = "Loaded model '{name}' successfully"
# The lines of a start that say where MLServer listens and what it loaded.
STARTUP_MARKS = ("running on", "Loaded model", "Couldn't load", "WARNING")


class ServerStartError(RuntimeError):
    """MLServer did not get the model ready; the message ends with its log."""

    def _render_traceback_(self) -> list:
        # In a notebook: the message (the student's file and line first), not the frames of
        # the lab's code that waited for the server.
        return [f"\x1b[1;31mServerStartError:\x1b[0m {self}"]


class StartInterrupted(ServerStartError, KeyboardInterrupt):
    """The start was interrupted (the notebook's stop button, Ctrl+C); the server was stopped."""


class PortTaken(ServerStartError):
    """A port chosen for the server was bound by another process before MLServer bound it."""


# What uvicorn (HTTP, metrics) and gRPC log when MLServer cannot bind a port.
PORT_TAKEN = re.compile(r"bind on address \('[^']*', (\d+)\)[^\n]*address already in use"
                        r"|Failed to bind to address [^\s;]*:(\d+)")


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')


def first_error_in(log: str, folder: Path) -> str:
    """``<file>, line <n>: <code>`` and the exception of the first traceback in ``log``
    that passes through a file of ``folder`` (the deepest such frame), or ''."""
    lines = log.splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    for start, end in zip(starts, starts[1:] + [len(lines)]):
        block = lines[start + 1:end]
        frames = [(index, match) for index, line in enumerate(block) if (match := FRAME.match(line))]
        mine = [(index, match) for index, match in frames if Path(match["path"]).parent == Path(folder)]
        if not mine:
            continue
        index, match = mine[-1]
        code = block[index + 1].strip() if index + 1 < len(block) and block[index + 1].startswith(" ") else ""
        # The exception is the first unindented line after the student's frame (deeper
        # frames are indented); the block's last frame may belong to another task's
        # traceback printed into the same log without a header of its own.
        exception = next((line for line in block[index + 1:] if line and not line.startswith(" ")), "")
        where = f"{Path(match['path']).name}, line {match['line']}" + (f": {code}" if code else "")
        return f"{where}\n  {exception}" if exception else where
    return ""


def last_exception(log: str) -> str:
    """The exception line(s) that end the last traceback in ``log``, or ''."""
    lines = log.splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return ""
    for line in lines[starts[-1] + 1:]:
        if line and not line.startswith(" "):
            return line
    return ""


def startup_lines(log: str) -> str:
    """The lines of ``log`` that say where MLServer listens and what it loaded, each once."""
    shown, seen = [], set()
    for line in log.splitlines():
        # MLServer logs "Loaded model" in each worker and again in the main process: once is news.
        text = TIMESTAMP.sub("", line)
        if any(mark in line for mark in STARTUP_MARKS) and text not in seen:
            seen.add(text)
            shown.append(line)
    return "\n".join(shown)


def start_error(reason: str, log: str, run_folder: Path | None, model_settings: dict | None = None,
                tail: int = 40) -> ServerStartError:
    """The error of a failed start: ``reason``, then the student's own file and line (for
    refused settings, given as ``model_settings``: what MLServer refused, in the student's
    terms), the log's last exception, and the log's last ``tail`` lines."""
    # The log's last traceback is often MLServer cleaning up (unloading a model that never
    # loaded), not the cause: the student's own line comes first.
    if model_settings is not None:
        from labkit.serving.mlserver_settings import refused

        yours = "\n  ".join(refused(model_settings, "model-settings"))
        yours = f"\nIn your model-settings.json: {yours}" if yours else ""
    else:
        yours = first_error_in(log, run_folder) if run_folder is not None else ""
        yours = f"\nIn your code: {yours}" if yours else ""
    cause = last_exception(log)
    cause = f"\nCause: {cause}" if cause else ""
    last_lines = "\n".join(log.splitlines()[-tail:])
    return ServerStartError(f"{reason}.{yours}{cause}\nLast lines of the server log:\n{last_lines}")
