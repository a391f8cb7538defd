"""How much memory one student needs: each solution notebook run end to end, as a kernel
runs it, with the memory of everything it runs sampled (``make notebook-memory``).

Each notebook runs in a fresh kernel (nbclient) in a scratch copy of notebooks/, with
LAB_QUICK=1 as `make test` runs them (the same servers, shorter loads). Every second the
proportional set size (PSS: shared pages counted once) of the kernel and all its
descendants (the MLServer supervisors, servers and workers it started) is summed; the
peak, the kernel's own peak and its memory after the last cell (the reference answers and
smoke calls it holds), and the time each notebook took are reported. The per-student memory a hub must
provision is the peak of the heaviest notebook plus JupyterLab itself (the single-user
server, measured here too, idle). Writes benchmarks/results/notebook-memory-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

from labkit.serving.processes import process_tree, total_memory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.record, run as a script
from benchmarks import record as bench_record  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "notebooks" / "solutions"
GB = 1024 ** 3


def run_notebook(path: Path, folder: Path, timeout: float) -> dict:
    """Run ``path`` in ``folder``; return its peak memory (bytes: the kernel with what it
    started, and the kernel alone), the cell that ran at the peak (its index and first line),
    the kernel's memory after the last cell, and its time (s)."""
    notebook = nbformat.read(path, as_version=4)
    # A last cell that waits, so that a sample lands after the notebook's own last cell.
    notebook.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(3)"))
    peak, kernel_peak, kernel_last, done = [0], [0], [0], threading.Event()
    running, peak_cell = [None], [None]  # the cell being run now, the one at the peak

    def cell_started(cell, cell_index: int, **_) -> None:
        first_line = next((line for line in cell.source.splitlines() if not line.startswith("#")), "")
        if "HIDDEN TESTS" in cell.source:  # the record is in the hand-out: no hidden test's text
            first_line = "(hidden tests)"
        running[0] = {"index": cell_index, "first_line": first_line[:80]}

    def sample() -> None:
        while not done.wait(1.0):
            tree = process_tree(os.getpid())[1:]  # the kernel and what it started
            now = total_memory(tree)
            if now > peak[0]:
                peak[0], peak_cell[0] = now, running[0]
            kernels = [process for process in tree if _is_kernel(process)]
            if kernels:
                kernel_last[0] = total_memory(kernels)
                kernel_peak[0] = max(kernel_peak[0], kernel_last[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3", on_cell_execute=cell_started,
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        done.set()
        sampler.join()
    return {"peak_bytes": peak[0], "peak_cell": peak_cell[0], "kernel_peak_bytes": kernel_peak[0],
            "kernel_end_bytes": kernel_last[0], "seconds": round(time.monotonic() - started, 1)}


def _is_kernel(process: psutil.Process) -> bool:
    try:
        return any("ipykernel_launcher" in part for part in process.cmdline())
    except psutil.Error:
        return False


def idle_jupyterlab_pss(folder: Path) -> int:
    """PSS of a JupyterLab server with no kernel, as a hub's single-user server starts."""
    lab = subprocess.Popen([str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--port=0",
                            "--ip=127.0.0.1", f"--notebook-dir={folder}", "--allow-root"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(15)  # started and settled
        return psutil.Process(lab.pid).memory_full_info().pss
    finally:
        lab.terminate()
        lab.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebook stems (default: all solution notebooks)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = [SOLUTIONS / f"{stem}.ipynb" for stem in args.notebooks] or sorted(SOLUTIONS.glob("*.ipynb"))
    os.environ["LAB_QUICK"] = "1"
    folder = Path(tempfile.mkdtemp(prefix="notebook-memory-"))
    results = {}
    try:
        shutil.copytree(SOLUTIONS, folder, dirs_exist_ok=True)
        jupyterlab = idle_jupyterlab_pss(folder)
        for path in paths:
            results[path.stem] = run_notebook(folder / path.name, folder, args.timeout)
            result = results[path.stem]
            print(f"{path.stem}: peak {result['peak_bytes'] / GB:.2f} GB (kernel alone at most "
                  f"{result['kernel_peak_bytes'] / GB:.2f}, after the last cell "
                  f"{result['kernel_end_bytes'] / GB:.2f}), {result['seconds']:.0f} s; peak in cell "
                  f"{result['peak_cell']}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.notebooks:  # the record (and deploy/jupyterhub/config.yaml) needs every notebook
        print("a subset of the notebooks: no record written")
        return 0
    heaviest = max(results, key=lambda stem: results[stem]["peak_bytes"])
    # 04 serves the optional Hugging Face runtime only where .venv-hf exists: say which was measured.
    record = {"date": datetime.date.today().isoformat(), "cpu_count": os.cpu_count(), "quick": True,
              "hf_runtime_installed": (REPO / ".venv-hf" / "bin" / "python").exists(),
              "jupyterlab_idle_bytes": jupyterlab, "notebooks": results, "heaviest": heaviest,
              "per_student_peak_bytes": results[heaviest]["peak_bytes"] + jupyterlab}
    print(f"JupyterLab idle: {jupyterlab / GB:.2f} GB; heaviest notebook {heaviest}: "
          f"{results[heaviest]['peak_bytes'] / GB:.2f} GB; per student at most "
          f"{record['per_student_peak_bytes'] / GB:.2f} GB")
    out = bench_record.write(bench_record.RESULTS, f"notebook-memory-{record['date']}", record)
    print(f"written: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
