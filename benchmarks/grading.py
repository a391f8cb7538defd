"""What grading a class costs: ``make grade`` on N copies of one hand-in of all seven notebooks
(the solution notebooks as a student runs them at home), ``--jobs`` at a time; writes
``benchmarks/results/grading-<date>.json`` and ``.md``.

    python benchmarks/grading.py --copies 6            # a class's cost, per hand-in and in all
    python benchmarks/grading.py --copies 1 --jobs 1   # one hand-in alone on the machine

Each hand-in must score every autograded point (a faster grading that grades wrong is no
result; 05's written justification waits for a human and is not counted). The
record holds the wall time, each hand-in's seconds, what a class of 30 takes at the measured
rate, and the machine's load before and after (another job on the machine shows there).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import record  # noqa: E402

from labkit.instructor.grading import grade  # noqa: E402
from labkit.instructor.build import SOLUTIONS  # noqa: E402

CLASS = 30


def run(copies: int, jobs: int, run_demonstrations: bool) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        submissions = Path(workdir) / "submissions"
        for number in range(1, copies + 1):
            shutil.copytree(SOLUTIONS, submissions / f"s{number:02d}",
                            ignore=shutil.ignore_patterns("*.log", "__pycache__", ".ipynb_checkpoints"))
        load_before = os.getloadavg()
        started = time.monotonic()
        rows = grade(submissions, Path(workdir) / "out", jobs=jobs, run_demonstrations=run_demonstrations)
        wall = time.monotonic() - started
        load_after = os.getloadavg()
        with open(Path(workdir) / "out" / "timing.csv") as handle:
            seconds = {row["student"]: float(row["seconds"]) for row in csv.DictReader(handle)}
    points: dict[str, float] = {}
    most: dict[str, float] = {}
    for row in rows:  # the written answer (05's justification) waits for a human: not counted here
        if not row["needs_manual_grade"]:
            points[row["student"]] = points.get(row["student"], 0.0) + row["points"]
            most[row["student"]] = most.get(row["student"], 0.0) + row["max_points"]
    wrong = {student: (got, most[student]) for student, got in points.items() if got != most[student]}
    if wrong:
        raise SystemExit(f"hand-ins of the solutions did not score full points: {wrong}")
    return {"copies": copies, "jobs": jobs, "demonstrations": "run" if run_demonstrations else "skipped",
            "wall_s": round(wall, 1), "hand_in_s": sorted(round(value, 1) for value in seconds.values()),
            "autograded_points_each": next(iter(most.values())),
            "class_of_30_min": round(wall / copies * CLASS / 60, 1),
            "load_1min_before": round(load_before[0], 2), "load_1min_after": round(load_after[0], 2)}


def markdown(report: dict) -> str:
    lines = [f"# Grading a class, {report['date']} ({report['commit']}, {report['cores']} cores)", "",
             "| hand-ins | jobs | demonstrations | wall (s) | per hand-in (s) | a class of 30 (min) "
             "| load before / after |",
             "|---:|---:|---|---:|---|---:|---|"]
    for row in report["rows"]:
        each = ", ".join(f"{value:.0f}" for value in row["hand_in_s"])
        lines.append(f"| {row['copies']} | {row['jobs']} | {row['demonstrations']} | {row['wall_s']:.0f} | {each} | "
                     f"{row['class_of_30_min']:.0f} | {row['load_1min_before']:.1f} / {row['load_1min_after']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=6, help="hand-ins to grade (a class of 30 is extrapolated)")
    parser.add_argument("--jobs", type=int, help="hand-ins graded side by side (default: one per core, as make grade)")
    parser.add_argument("--alone", action="store_true", help="first grade one hand-in alone (jobs 1)")
    parser.add_argument("--run-demonstrations", action="store_true", help="grade as before: every cell runs")
    parser.add_argument("--out", type=Path, default=record.RESULTS)
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    jobs = args.jobs or cores
    rows = []
    if args.alone:
        rows.append(run(1, 1, args.run_demonstrations))
    rows.append(run(args.copies, jobs, args.run_demonstrations))
    today = datetime.date.today().isoformat()
    report = {"date": today, "commit": record.commit(), "cores": cores, "rows": rows}
    record.write(args.out, f"grading-{today}", report, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
