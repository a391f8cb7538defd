"""One command line for the lab: `python -m labkit <command>`."""

import subprocess
import sys

from labkit.__main__ import COMMANDS
from tests.helpers.lab import REPO


def run(*arguments):
    return subprocess.run([sys.executable, "-m", "labkit", *arguments], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_without_a_command_it_lists_them_all():
    done = run()
    assert done.returncode == 2
    assert all(f"    {command} " in done.stderr for command in COMMANDS), done.stderr


def test_each_command_is_its_modules_own_command_line():
    for command in ("weights", "handout", "notebooks"):
        done = run(command, "--help")
        assert done.returncode == 0 and f"python -m labkit {command}" in done.stdout, (command, done.stderr[-500:])
