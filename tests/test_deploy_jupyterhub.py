"""deploy/jupyterhub: the single-user image and the Zero-to-JupyterHub configuration.

Neither can run here (no Kubernetes, no Docker daemon), so the tests hold them to what can
be checked: the configuration parses and its memory figures are the ones measured by
benchmarks/notebook_memory.py (newest result), and the image installs exactly the
repository's pinned requirements from the student hand-out its first stage builds.
"""

import json
import math
import re
import sys
from pathlib import Path

import yaml

from labkit.instructor import handout
from tests.helpers.lab import REPO

DEPLOY = REPO / "deploy" / "jupyterhub"
GiB = 1024 ** 3


def config() -> dict:
    return yaml.safe_load((DEPLOY / "config.yaml").read_text())


def newest_memory_record() -> dict:
    records = sorted((REPO / "benchmarks" / "results").glob("notebook-memory-*.json"))
    assert records, "no benchmarks/results/notebook-memory-*.json: run `make notebook-memory`"
    return json.loads(records[-1].read_text())


def gibibytes(quantity: str) -> float:
    """A Kubernetes memory quantity as Z2JH writes it ("3G" is 3 * 2**30 bytes in Z2JH)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)G", quantity)
    assert match, f"write memory as <number>G, not {quantity!r}"
    return float(match.group(1))


def round_up(bytes_: int, step: float) -> float:
    return math.ceil(bytes_ / GiB / step) * step


def test_the_configuration_parses_and_starts_the_lab_image():
    singleuser = config()["singleuser"]
    assert singleuser["image"]["name"] and singleuser["image"]["tag"]
    assert singleuser["cmd"] == "jupyterhub-singleuser" and singleuser["defaultUrl"] == "/lab"
    # The students' notebooks are copied from the image into their home without
    # overwriting what they wrote (cp --no-clobber), at every start.
    command = " ".join(singleuser["lifecycleHooks"]["postStart"]["exec"]["command"])
    assert "cp" in command and "--no-clobber" in command and "/opt/mlserver-lab/notebooks" in command


def test_memory_guarantee_and_limit_are_the_measured_ones():
    record = newest_memory_record()
    memory = config()["singleuser"]["memory"]
    peaks = sorted(result["peak_bytes"] for result in record["notebooks"].values())
    assert len(peaks) == 7, "measure all seven notebooks"
    jupyterlab = record["jupyterlab_idle_bytes"]
    # The limit: the heaviest notebook with JupyterLab and 1 GiB of headroom, rounded up to a
    # whole GiB. Headroom: one quick-mode run (a sample a second; 05's peak read 2.19 to 2.46 GiB
    # in three runs of one day), and a worker keeps more as it meets new batch sizes in full
    # mode. A limit reserves nothing (the guarantee does); a limit too low kills the kernel.
    assert gibibytes(memory["limit"]) == round_up(record["per_student_peak_bytes"] + 2 ** 30, 1.0)
    # The guarantee: the median notebook with JupyterLab, rounded up to half a GiB.
    assert gibibytes(memory["guarantee"]) == round_up(peaks[len(peaks) // 2] + jupyterlab, 0.5)


def test_the_image_installs_the_pinned_requirements_from_the_handout():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    python = f"python:{sys.version_info.major}.{sys.version_info.minor}-"
    assert bases and all(base.startswith(python) for base in bases), \
        f"the image's Python must be the one the pins are tested with ({python}): {bases}"
    assert "python -m labkit handout /out" in dockerfile
    # The hand-out carries requirements.txt unchanged, and the image installs it and
    # nothing else from an index (labkit itself without dependencies).
    assert "requirements.txt" in handout.SHARED
    installs = [found.strip() for found in re.findall(r"pip install ([^\n&\\]*)", dockerfile)]
    assert installs == ["--no-cache-dir -r /opt/mlserver-lab/requirements.txt",
                        "--no-cache-dir --no-deps --no-build-isolation -e /opt/mlserver-lab"], installs
    assert "python -m labkit weights download" in dockerfile


def test_the_handout_stage_builds_with_the_standard_library_only(tmp_path):
    # The first stage runs `python -m labkit handout` on a plain python image.
    import subprocess

    done = subprocess.run([sys.executable, "-S", "-m", "labkit.instructor.handout", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    built = tmp_path / handout.NAME
    assert (built / "requirements.txt").read_bytes() == (REPO / "requirements.txt").read_bytes()
    for needed in ("notebooks", "tools/jupyter", "labkit/model/weights.py", "pyproject.toml"):
        assert (built / needed).exists(), needed
    assert Path(built / "deploy" / "jupyterhub" / "Dockerfile").exists()


def test_the_image_sets_the_labs_environment_that_is_not_a_folder():
    # `make lab` exports these to every kernel and server; a hub's image must set them too
    # (ORT_DISABLE_TELEMETRY: else ONNX Runtime writes a device id into every student's home).
    from tests.helpers.jupyterlab import lab_environment

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    settings = {name: value for name, value in lab_environment().items() if "/" not in value}
    assert "ORT_DISABLE_TELEMETRY" in settings
    for name, value in settings.items():
        assert re.search(rf"^ENV (.*\\\n)*\s*{name}={re.escape(value)}\b", dockerfile, re.MULTILINE), name
