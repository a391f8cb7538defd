"""The ``%%writefile`` hook: right after a cell writes a file into the exercise's folder,
the right check of that file runs (:func:`check_each_write`), so the cell that writes a file
says at once whether it works."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from labkit.checks.feedback import CheckFailed
from labkit.checks.requirements_file import requirements
from labkit.checks.service_calls import service
from labkit.checks.settings_files import model_settings, server_settings
from labkit.paths import PathLike

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult


# Right after a cell writes the file: model-settings.json may come before the code it names.
CHECKS_BY_FILE: dict[str, Callable[[Path], None]] = {
    "model-settings.json": lambda folder: model_settings(folder, require_code=False),
    "settings.json": server_settings, "requirements.txt": requirements}


def check_each_write(folder: PathLike, service_check: Callable[[Path], None] = service,
                     settings_check: Callable[[Path], None] | None = None) -> None:
    """After each cell that ``%%writefile``-s a file into ``folder``, check that file.
    ``service_check`` checks ``.py`` files (the exercise's own smoke call), ``settings_check``
    model-settings.json when the exercise has its own check of it."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    folder = Path(folder).resolve()

    def after_cell(result: ExecutionResult) -> None:
        # IPython declares info = None on the class; a finished cell's result has its ExecutionInfo
        match = re.match(r"\s*%%writefile\s+(?:-a\s+)?(\S+)", result.info.raw_cell or "")  # type: ignore[attr-defined]
        if not match or result.error_in_exec is not None:
            return
        path = Path(match.group(1)).resolve()
        if path.parent != folder:
            return
        check: Callable[[Path], None] | None
        if path.name == "model-settings.json" and settings_check is not None:
            check = settings_check
        else:
            check = CHECKS_BY_FILE.get(path.name) or (service_check if path.suffix == ".py" else None)
        if check is None:
            return
        if path.suffix == ".py" and os.environ.get("NBGRADER_EXECUTION") == "autograde":
            # Grading: the graded cells below run the service; its smoke call here would run
            # it once more in a Python that imports torch (10-14 s), for no point.
            print(f"(while grading, {path.name} is checked by the graded cells below)")
            return
        if path.suffix == ".py":  # seconds with no other sign of life: say what runs, and for how long
            print(f"Checking {path.name}: importing it and calling it on drawn images, in a Python process of its "
                  "own (about 10 s; longer on a busy machine)...", flush=True)
        try:
            check(folder)
        except CheckFailed as failure:
            print(f"✘ {failure}")

    after_cell.lab_checked_folder = str(folder)  # type: ignore[attr-defined]  # finds it again when run twice
    for callback in list(shell.events.callbacks["post_run_cell"]):
        if getattr(callback, "lab_checked_folder", None) == str(folder):
            shell.events.unregister("post_run_cell", callback)
    shell.events.register("post_run_cell", after_cell)
