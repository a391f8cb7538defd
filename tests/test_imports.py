"""The helpers a notebook imports first stay light: no torch or timm until a model is needed
(a kernel that only starts a server should not pay ~0.5 GB for them)."""

import subprocess
import sys

import pytest

LIGHT = ["labkit.paths", "labkit.config", "labkit.serving.server", "labkit.client", "labkit.instructor.build",
         "labkit.instructor.grading", "labkit.workspace", "labkit.measure.callers", "labkit.__main__",
         # What every notebook's first check cell imports, and the labels and checkpoint reads:
         # 06's kernel held 0.77 GB PSS for them (make notebook-memory, 2026-12-03), 0.6 of it torch.
         "labkit.checks", "labkit.model.weights", "labkit.show"]


@pytest.mark.slow  # a fresh interpreter per module: 2.5 s
def test_light_modules_import_no_torch_or_timm():
    code = (f"import sys\nfor name in {LIGHT!r}: __import__(name)\n"
            "print(sorted(name for name in ('torch', 'timm') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# What MLServer's main process imports to find a service class: with parallel workers it never
# runs the model, so these must not pull torch in (a second torch per start, in time and memory).
SERVICE_CLASSES = ["labkit.runtimes.timm", "labkit.runtimes.engines"]


def test_service_classes_import_no_torch_or_timm():
    code = ("import sys\nfrom labkit.model.service import service_module\nservice_module()\n"
            f"for name in {SERVICE_CLASSES!r}: __import__(name)\n"
            "print(sorted(name for name in ('torch', 'timm', 'torchvision') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
