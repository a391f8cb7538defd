"""`make test` after its set-up: lint, the tests, the solution notebooks under nbval; then a
record of the run, written even when a phase fails:
``benchmarks/results/test-runs/<date>T<time>.json`` (phases and their seconds, tests passed,
failed and skipped, the slowest tests, MLServer starts by kind, and the machine's load: how
much of the CPU other processes took while each phase ran). Exits with the first failure.

    python tools/run_tests.py [--started EPOCH] [--start-log FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "results" / "test-runs"
SLOWEST = 15


def cpu_busy_seconds() -> float:
    """Seconds every core of the machine spent busy since boot (/proc/stat)."""
    fields = [float(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_phase(name: str, command: list[str], env: dict) -> dict:
    print(f"== {name}: {' '.join(command)}", flush=True)
    started, busy, ours = time.monotonic(), cpu_busy_seconds(), children_cpu_seconds()
    code = subprocess.call(command, cwd=ROOT, env=env)
    seconds = time.monotonic() - started
    others = max(0.0, (cpu_busy_seconds() - busy) - (children_cpu_seconds() - ours))
    cores = len(os.sched_getaffinity(0))
    return {"seconds": round(seconds, 1), "exit_code": code,
            "cpu_of_the_run_s": round(children_cpu_seconds() - ours, 1),
            # CPU that processes outside this run took (another job on the machine): as a
            # share of what the machine's cores could do in the phase's time.
            "others_cpu_share": round(others / (seconds * cores), 3) if seconds > 0 else 0.0,
            "load_1min_after": round(os.getloadavg()[0], 2)}


def junit_summary(path: Path) -> dict:
    if not path.is_file():
        return {}
    cases = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        cases.append((f"{case.get('classname', '')}::{case.get('name', '')}", float(case.get("time", 0)), outcome))
    counts = {outcome: sum(1 for case in cases if case[2] == outcome) for outcome in ("passed", "failed", "skipped")}
    slowest = sorted(cases, key=lambda case: -case[1])[:SLOWEST]
    return {**counts, "failed_tests": [name for name, _, outcome in cases if outcome == "failed"],
            "slowest": [{"test": name, "seconds": round(seconds, 1)} for name, seconds, _ in slowest]}


def starts_summary(path: Path | None) -> dict:
    """MLServer starts in the run, by kind (torch or engine), with their seconds until ready."""
    if path is None or not path.is_file():
        return {}
    kinds: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            kinds.setdefault(parts[3] if len(parts) > 3 and parts[3] else "unknown", []).append(float(parts[1]))
    return {kind: {"starts": len(seconds), "ready_s_mean": round(sum(seconds) / len(seconds), 1),
                   "ready_s_total": round(sum(seconds))} for kind, seconds in sorted(kinds.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--started", type=float, help="when `make test` began (epoch seconds): its set-up phase")
    parser.add_argument("--start-log", type=Path)
    parser.add_argument("--state", type=Path, default=ROOT / ".lab")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.start_log:
        args.start_log.unlink(missing_ok=True)
        env["LAB_START_LOG"] = str(args.start_log)
    args.state.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    began = time.time()
    phases = {}
    if args.started is not None:
        phases["setup"] = {"seconds": round(began - args.started, 1), "exit_code": 0}
    plan = [("lint", [str(Path(python).parent / "ruff"), "check", "labkit", "tests", "benchmarks", "tinyvit", "tools"]),
            ("pytest", [python, "-m", "pytest", "--durations=12", f"--junitxml={args.state / 'pytest.xml'}", "tests"]),
            ("nbval", [python, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
                       f"--junitxml={args.state / 'nbval.xml'}", "notebooks/solutions"])]
    for path in (args.state / "pytest.xml", args.state / "nbval.xml"):
        path.unlink(missing_ok=True)
    for name, command in plan:
        phase_env = {**env, "LAB_QUICK": "1"} if name == "nbval" else env
        phases[name] = run_phase(name, command, phase_env)
        if phases[name]["exit_code"] != 0:
            break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit,
              "cores": len(os.sched_getaffinity(0)), "ci": bool(os.environ.get("CI")),
              "total_s": round(sum(phase["seconds"] for phase in phases.values()), 1), "phases": phases,
              "tests": junit_summary(args.state / "pytest.xml"), "notebooks": junit_summary(args.state / "nbval.xml"),
              "starts": starts_summary(args.start_log)}
    RECORDS.mkdir(parents=True, exist_ok=True)
    target = RECORDS / f"{datetime.datetime.now():%Y-%m-%dT%H%M%S}.json"
    target.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nthe run's record: {target}")
    for name, phase in phases.items():
        share = phase.get("others_cpu_share")
        busy = f", other processes took {share:.0%} of the CPU" if share is not None else ""
        print(f"  {name}: {phase['seconds'] / 60:.1f} min{busy}")
    for kind, starts in record["starts"].items():
        print(f"  MLServer starts ({kind}): {starts['starts']}, {starts['ready_s_mean']:.1f} s until ready on average")
    failed = [phase["exit_code"] for phase in phases.values() if phase["exit_code"]]
    return failed[0] if failed else 0


if __name__ == "__main__":
    sys.exit(main())
