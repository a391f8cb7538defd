"""Run the course text's commands from a notebook cell, as a terminal would: ``terminal("...")``.

    server = terminal("mlserver start my-tinyvit")   # waits until the model is ready
    terminal("mlserver dockerfile shipped")          # prints what MLServer prints
    terminal("python -m labkit export")              # one of the lab's own commands

One function for every command a notebook runs, so a cell reads as the line the course text
types. A kernel's ``PATH`` may lack the lab's virtualenv, so ``mlserver`` and ``python`` are this
environment's. ``mlserver start`` runs under :class:`ModelServer` (a copy of the folder, loopback,
free ports when the defaults are taken, stopped with the kernel) and says what it changed.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from labkit.serving.runcopy import settings_changes
from labkit.serving.server import ModelServer

COMMANDS = ("mlserver", "python")


def terminal(command: str, timeout: float = 180, **overrides) -> ModelServer | None:
    """Run ``command`` as typed in a terminal and show what it prints.

    Args:
        command: an ``mlserver ...`` or ``python ...`` command line.
        timeout: for ``mlserver start``, seconds to wait until the model is ready.
        **overrides: for ``mlserver start``, :class:`ModelServer`'s options (``parallel_workers=2``).

    Returns:
        For ``mlserver start <folder>``, the running :class:`ModelServer` (``server.infer_url``,
        ``server.log``, ``server.stop()``); for any other command, ``None`` once it has finished.

    Raises:
        ValueError: the command is not an ``mlserver`` or ``python`` command line, or
            ``mlserver start`` names no single folder.
        TypeError: the command is not text (a list of words, say).
        ServerStartError: the model did not get ready; the message names the first error in
            your own file and line, then the end of the server's log.
        RuntimeError: another command ended with a non-zero exit status.

    Example:
        >>> server = terminal("mlserver start my-tinyvit")
    """
    if not isinstance(command, str):
        # helper session 9: a list, as subprocess takes it, crashed inside shlex
        raise TypeError(f"terminal() takes the command as one line of text, as typed in a terminal "
                        f"(\"mlserver dockerfile shipped\"), not a {type(command).__name__}.")
    words = shlex.split(command)
    if not words or words[0] not in COMMANDS:
        raise ValueError(f"{command!r}: expected a command that starts with 'mlserver' or 'python'")
    if words[:2] == ["mlserver", "start"]:
        if len(words) != 3:
            raise ValueError(f"{command!r}: write the command as in a terminal, `mlserver start <folder>`.")
        return _start(words[2], command, timeout, overrides)
    if overrides:
        raise TypeError(f"server options ({', '.join(overrides)}) go with `mlserver start` only")
    _run([executable(words[0]), *words[1:]], command)
    return None


def executable(name: str) -> str:
    """``mlserver`` or ``python`` of this Python environment."""
    return sys.executable if name == "python" else str(Path(sys.executable).parent / name)


def _start(folder: str, command: str, timeout: float, overrides: dict) -> ModelServer:
    server = ModelServer(folder, **overrides)
    print(f"$ {command}")
    for note in _ignored_keys(server.model_dir):
        print(f"Note: {note}")  # MLServer itself says nothing about them
    server.start(timeout=timeout)  # on failure, the error ends with the server's log
    print(server.startup_lines())
    changes = settings_changes(server.model_dir / "settings.json", server.run_folder / "settings.json")
    if changes:
        print("The lab changed, in the copy MLServer runs (your settings.json is as you wrote it):\n  "
              + "\n  ".join(changes)
              + "\n  (always loopback; ports 8080-8082 when free, other free ports when they are taken or "
              "LAB_FREE_PORTS is set)")
    return server


def _ignored_keys(folder: Path) -> list[str]:
    """Each key of the folder's two settings files that MLServer will ignore in silence."""
    from labkit.serving.mlserver_settings import FILES, ignored_keys

    notes = []
    for kind, name in FILES.items():
        try:
            content = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue  # no file (MLServer's defaults), or one the start itself names
        if isinstance(content, dict):
            notes += [f"{name}: {note}" for note in ignored_keys(content, kind)]
    return notes


def _run(arguments: list[str], command: str) -> None:
    """Print what the command prints, as it prints it; fail as it fails."""
    process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None  # stdout=PIPE
    with process.stdout:
        for line in process.stdout:
            print(line, end="")
    if process.wait() != 0:
        raise RuntimeError(f"{command!r} failed with exit status {process.returncode}")
