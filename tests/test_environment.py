"""The environment files agree, and the tools the lab relies on are installed."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def requirement_names():
    names = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
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


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name, pinned in requirement_names().items():
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
