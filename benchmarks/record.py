"""How a benchmark script ends: its record as JSON and, with a renderer, as markdown beside it
under the results folder, the markdown printed. The record's format is read back by
``labkit.measure.record`` (the notebooks) and by each script's ``--render``.

    write(args.out, f"starts-{report['date']}", report, markdown)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"  # where every script writes its record (--out)


def commit() -> str:
    """The checkout's short commit, or "unknown" outside a git checkout (a hand-out)."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def write(out: Path, stem: str, report: dict, markdown: Callable[[dict], str] | None = None,
          kind: str | None = None) -> Path:
    """``out/<stem>.json`` (and ``out/<stem>.md`` with ``markdown``); prints the markdown, or
    the JSON without one. Returns the JSON's path.

    Args:
        kind: a record the notebooks read back (a key of ``labkit.measure.record.FORMATS``),
            held to its declared format before anything is written.

    Raises:
        ValueError: a report of ``kind`` that lacks what the notebooks read.
    """
    if kind is not None:
        from labkit.measure.record import format_problems

        problems = format_problems(kind, report)
        if problems:
            raise ValueError(f"this {kind} record lacks what the notebooks read: " + "; ".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{stem}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    if markdown is None:
        print(json.dumps(report, indent=2))
    else:
        text = markdown(report)
        (out / f"{stem}.md").write_text(text)
        print(text)
    return target
