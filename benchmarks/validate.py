"""What the students' Validate button costs: each solution notebook validated as the button does
(nbgrader's Validator with the lab's Jupyter config, tools/jupyter), in a fresh kernel, one after
the other; its seconds, whether it passed, and how much of the CPU other processes took
meanwhile. The solution notebooks run where nbval runs them (notebooks/solutions/), and stand
for a right hand-in: Validate runs every cell, demonstrations included.

    python benchmarks/validate.py [--notebooks 01_first_service ...] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import REPO, commit, write  # noqa: E402
from labkit.measure.machine import busy_cpu_seconds, own_cpu_seconds  # noqa: E402

SOLUTIONS = REPO / "notebooks" / "solutions"


def validate(notebook: Path) -> dict:
    """Seconds, success and the others' CPU share of one validation, as the button runs it."""
    from jupyter_core.paths import jupyter_config_path
    from nbgrader.apps import NbGrader
    from nbgrader.validator import Validator

    app = NbGrader()
    app.config_file_paths.append(jupyter_config_path())
    app.load_config_file()
    cores = len(os.sched_getaffinity(0))
    started, busy, ours = time.monotonic(), busy_cpu_seconds(), own_cpu_seconds()
    try:
        failed = Validator(config=app.config).validate(str(notebook))
        error = ""
    except Exception as caught:  # what the button shows as its error
        failed, error = {}, f"{type(caught).__name__}: {str(caught).splitlines()[0][:200]}"
    seconds = time.monotonic() - started
    others = max(0.0, (busy_cpu_seconds() - busy) - (own_cpu_seconds() - ours))
    return {"notebook": notebook.stem, "seconds": round(seconds, 1), "passed": not failed and not error,
            "error": error or (str(failed)[:200] if failed else ""),
            "others_cpu_share": round(min(1.0, others / (seconds * cores)), 3)}


def markdown(report: dict) -> str:
    lines = [f"# What Validate costs, {report['date']} ({report['commit']}, {report['cores']} cores)", "",
             "Each solution notebook validated as the students' button does it (the lab's Jupyter config), "
             "one after the other, in a fresh kernel.", "",
             "| notebook | seconds | passed | others' CPU |", "|---|---:|---|---:|"]
    for row in report["rows"]:
        lines.append(f"| {row['notebook']} | {row['seconds']:.0f} | {'yes' if row['passed'] else 'no: ' + row['error']}"
                     f" | {row['others_cpu_share']:.0%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=sorted(path.stem for path in SOLUTIONS.glob("0*.ipynb")))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    os.environ["JUPYTER_CONFIG_PATH"] = str(REPO / "tools" / "jupyter")
    os.chdir(SOLUTIONS)  # the button's server runs in the notebooks' folder: no config of its own there
    rows = []
    for name in args.notebooks:
        print(f"validating {name} ...", flush=True)
        rows.append(validate(SOLUTIONS / f"{name}.ipynb"))
        print(f"  {rows[-1]}", flush=True)
    date = datetime.date.today().isoformat()
    report = {"date": date, "commit": commit(), "cores": len(os.sched_getaffinity(0)), "rows": rows}
    write(args.out, f"validate-{date}", report, markdown)


if __name__ == "__main__":
    main()
