"""Notebook 05's sweep as a student runs it in full mode (``make bench-sweep``): the lab's service,
workers (1, 2) x batching (none; 8 images in 10 ms) at 1 and 8 callers, 15 s each, the grid run
``--rounds`` times in turn (each round in the reverse order of the one before, so a slow minute
of the machine hits every row alike). It records each row's medians over the rounds, the
budget and pick as the notebook computes them, and the lines ``scaling_findings`` prints under
the student's table: the numbers Exercise 3's model answer quotes, from a run of the notebook's
own code on a known machine, with how busy that machine was.

    .venv/bin/python benchmarks/sweep.py [--rounds 2] [--seconds 15]

Writes benchmarks/results/sweep-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from labkit.measure import ScalingLab, machine_note, scaling_findings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks, run as a script
from benchmarks import record  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["throughput_rps", "p50_ms", "p95_ms", "avg_batch", "errors", "others_cpu_share"]


def grid() -> list[dict]:
    """The notebook's grid in full mode (notebooks/source/05_scaling.py, "A small sweep")."""
    return [{"parallel_workers": workers, "max_batch_size": size, "max_batch_time": wait,
             "concurrency": concurrency}
            for workers in (1, 2) for size, wait in ((1, 0.0), (8, 0.01)) for concurrency in (1, 8)]


def pick(at_8: pd.DataFrame, budget_ms: float):
    """The solution's pick_configuration: the best throughput within the budget."""
    within = at_8[at_8.p95_ms <= budget_ms]
    return None if within.empty else within.throughput_rps.idxmax()


def run(rounds: int, seconds: float) -> dict:
    lab = ScalingLab(REPO / "tinyvit", duration=seconds, http_port=0, grpc_port=0, metrics_port=0)
    rows = []
    try:
        for round_ in range(1, rounds + 1):
            order = grid() if round_ % 2 else grid()[::-1]
            table = lab.sweep(order)
            table["round"] = round_
            rows.append(table)
    finally:
        lab.stop()
    every = pd.concat(rows, ignore_index=True)
    keys = ["configuration", "parallel_workers", "max_batch_size", "concurrency"]
    medians = every.groupby(keys, sort=False)[[c for c in COLUMNS if c in every]].median().reset_index()
    at_8 = medians[medians.concurrency == 8]
    budget_ms = float(np.ceil(at_8.p95_ms.median() / 50) * 50)  # as the notebook sets it
    choice = pick(at_8, budget_ms)
    return {
        "date": datetime.date.today().isoformat(), "commit": record.commit(),
        "cores": len(os.sched_getaffinity(0)), "rounds": rounds, "seconds": seconds,
        "machine": machine_note(every), "budget_ms": budget_ms,
        "pick": None if choice is None else medians.loc[choice, "configuration"],
        "findings": scaling_findings(medians),
        "rows": medians.round(3).to_dict(orient="records"),
        "every_round": every[keys + ["round"] + [c for c in COLUMNS if c in every]].round(3).to_dict(orient="records"),
    }


def markdown(report: dict) -> str:
    lines = [f"# Notebook 05's sweep, full mode, {report['date']} ({report['commit']}, {report['cores']} cores)", "",
             f"Medians of {report['rounds']} rounds of {report['seconds']:.0f} s per row; {report['machine']}", "",
             "| configuration | callers | requests/s | p50 ms | p95 ms | avg batch | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        lines.append(f"| {row['configuration']} | {row['concurrency']} | {row['throughput_rps']:.1f} | "
                     f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['avg_batch']:.1f} | {row['errors']:.0f} |")
    lines += ["", f"Budget as the notebook sets it: p95 <= {report['budget_ms']:.0f} ms at 8 callers; "
              f"the solution's pick: {report['pick']}.", ""]
    lines += [f"- {line}" for line in report["findings"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=record.RESULTS)
    args = parser.parse_args()
    report = run(args.rounds, args.seconds)
    record.write(args.out, f"sweep-{report['date']}", report, markdown)


if __name__ == "__main__":
    main()
