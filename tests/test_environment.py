"""The environment files agree, and the tools the lab relies on are installed."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def requirement_names(file: str = "requirements.txt"):
    names = {}
    for line in (REPO / file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r "):
            name, _, version = re.split(r"(==|<|>=)", line, maxsplit=1)
            names[name.lower()] = version
    return names


def test_env_yaml_installs_requirements_txt_with_python_311():
    env = yaml.safe_load((REPO / "env.yaml").read_text())
    dependencies = env["dependencies"]
    assert "python=3.11" in dependencies and "pip" in dependencies
    pip_section = next(item["pip"] for item in dependencies if isinstance(item, dict))
    assert "-r requirements.txt" in pip_section


def test_requirements_pin_the_known_pitfalls():
    pins = requirement_names()
    assert pins["mlserver"] == "1.7.1"
    assert pins["uvloop"] < "0.22"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    for package in ["timm", "numpy", "pillow", "requests", "jupyterlab", "ipywidgets", "nbval",
                    "pytest", "tqdm", "matplotlib", "scikit-image", "nbgrader"]:
        assert package in pins, package


TEST_TOOLS = ["schemathesis", "playwright", "websocket-client", "jupyterhub", "ruff", "mypy"]


def test_the_students_environment_holds_what_the_lab_needs_and_not_the_tests_tools():
    # The hand-out installs requirements.txt only; `make test` installs requirements-dev.txt too.
    assert not set(TEST_TOOLS) & set(requirement_names())
    assert set(requirement_names("requirements-dev.txt")) == set(TEST_TOOLS)
    assert (REPO / "requirements-dev.txt").read_text().count("-r requirements.txt") == 1
    makefile = (REPO / "Makefile").read_text()
    assert "test-setup: $(DEV_STAMP)" in makefile and "test-fast: $(DEV_STAMP)" in makefile
    assert "requirements-dev" not in (REPO / "tools" / "lab.mk").read_text()


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name, pinned in {**requirement_names(), **requirement_names("requirements-dev.txt")}.items():
        assert version(name) == pinned, f"{name}: installed {version(name)}, pinned {pinned}"


def test_tinyvit_settings_bind_loopback():
    import json

    assert json.loads((REPO / "tinyvit" / "settings.json").read_text())["host"] == "127.0.0.1"


def test_installing_again_is_a_no_op_when_nothing_changed():
    import subprocess

    # `make -q` exits 0 only if the target is up to date: the stamp keyed on
    # requirements.txt and pyproject.toml means no reinstall.
    done = subprocess.run(["make", "-q", "venv"], cwd=REPO, capture_output=True)
    assert done.returncode == 0, "make venv would reinstall although nothing changed"


def test_make_lab_says_what_it_will_download_and_shows_pips_progress():
    # Before: pip ran with -qq for minutes, a 3 GB download in silence.
    import subprocess

    plan = subprocess.run(["make", "-n", "-B", "-f", "tools/lab.mk", "venv"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout
    assert "about 3.3 GB to download, about 7 GB on disk" in plan
    install = next(line for line in plan.splitlines() if "pip install" in line and "-r requirements.txt" in line)
    assert "-q" not in install.split() and "-qq" not in install.split(), install
    assert plan.index("GB to download") < plan.index("-r requirements.txt")  # said before it starts


def _install_hf_runtime_with(tmp_path: Path, pip_says: str, failing: str = "pip"):
    """`make hf-runtime-if-room` in tmp_path, with a pip (which installs uv, then the lab) or a uv
    (which installs the packages) that fails saying `pip_says`, the other one doing nothing."""
    import subprocess

    stamp = tmp_path / "main-venv-stamp"
    stamp.write_text("")
    venv = tmp_path / "venv-hf"
    (venv / "lib").mkdir(parents=True)  # what a pip that ran out of disk left behind
    (venv / "lib" / "half-installed").write_text("x" * 1000)
    tools = {}
    for tool in ("pip", "uv"):
        tools[tool] = tmp_path / f"{tool}.sh"
        tools[tool].write_text(f"echo '{pip_says}' >&2\nexit 1\n" if tool == failing else "exit 0\n")
    done = subprocess.run(
        ["make", "--no-print-directory", "-f", "tools/lab.mk", "hf-runtime-if-room", f"STAMP={stamp}",
         f"HF_VENV={venv}", f"HF_PIP=sh {tools['pip']}", f"HF_UV=sh {tools['uv']}",
         f"HF_LOG={tmp_path / 'install.log'}",
         f"HF_SKIPPED={tmp_path / 'skipped'}", "HF_DISK_GB=0", "PYTHON=true"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    return done, venv, tmp_path / "skipped"


@pytest.mark.parametrize("failing, says", [
    ("pip", "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"),
    ("uv", "error: Failed to install: torch-2.8.0-cp311-cp311-manylinux_2_28_x86_64.whl (torch==2.8.0)\n"
           "  Caused by: failed to write to file: No space left on device (os error 28)")])
def test_a_disk_that_fills_while_the_optional_runtime_installs_skips_it_loudly(tmp_path, failing, says):
    # Before: the free disk read before the install was enough, pip then ran out of it
    # ("[Errno 28] No space left on device") and make test failed at its setup, in CI.
    done, venv, skipped = _install_hf_runtime_with(tmp_path, says, failing)
    assert done.returncode == 0, done.stderr
    assert not venv.exists()  # removed: a half-built one would be finished next time, and fail again
    assert "ran out of disk while it installed" in skipped.read_text()
    assert "!!! NOT INSTALLED: the optional Hugging Face runtime" in done.stderr
    assert "No space left on device" in done.stderr  # pip's own words, shown


@pytest.mark.parametrize("failing", ["pip", "uv"])
def test_any_other_failure_of_the_optional_runtimes_install_fails_make(tmp_path, failing):
    done, venv, skipped = _install_hf_runtime_with(
        tmp_path, "ERROR: Could not find a version that satisfies the requirement torch==2.8.0", failing)
    assert done.returncode != 0
    assert "satisfies the requirement" in done.stderr
    assert venv.exists() and not skipped.exists()
