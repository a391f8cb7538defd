"""CPU seconds of a server's processes by role, and of the load generator (this process), for the
benchmarks' CPU per image: on two cores, every millisecond the server spends around the model
and the load generator spends sending is a millisecond the model does not get."""

from __future__ import annotations

import psutil

from labkit.serving.processes import process_tree

ROLES = ("main", "worker", "load generator")


def role(process) -> str:
    """Which part of the server tree a process is (by its command line)."""
    command = " ".join(process.cmdline())
    if "spawn_main" in command:
        return "worker"
    if "mlserver start" in command or command.endswith("/mlserver start"):
        return "main"
    return "other"  # the lab's supervisor, multiprocessing's resource tracker


def cpu_seconds(server_pid: int) -> dict:
    """CPU seconds (user + system) so far, per role, of the server tree and of this process."""
    seconds = dict.fromkeys((*ROLES, "other"), 0.0)
    for process in process_tree(server_pid):
        try:
            times = process.cpu_times()
            seconds[role(process)] += times.user + times.system
        except psutil.Error:
            pass
    own = psutil.Process().cpu_times()
    seconds["load generator"] = own.user + own.system
    return seconds


def per_image(before: dict, after: dict, images: int) -> dict:
    """Milliseconds of CPU per image, per role, between two ``cpu_seconds()`` readings."""
    return {name: round(1000 * (after[name] - before[name]) / images, 1) for name in after}
