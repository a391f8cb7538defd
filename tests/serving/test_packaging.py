"""Packaging: tinyvit/requirements.txt, the generated Dockerfile, the KServe manifest."""

import json
import re
import subprocess
import sys
from importlib.metadata import version

import pytest
import yaml

from labkit.serving import packaging
from labkit.serving import terminal
from tests.helpers.lab import REPO
from tests.helpers.network import folder_digest


def pins(path):
    result = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()
            result[name.lower()] = version
    return result


def test_service_requirements_are_pinned_pip_lines_matching_the_lab():
    service, lab = pins(REPO / "tinyvit" / "requirements.txt"), pins(REPO / "requirements.txt")
    assert {"mlserver", "torch", "timm", "pillow", "numpy", "safetensors"} <= set(service)
    assert "jupyterlab" not in service and "pytest" not in service, "only what the service needs"
    assert all(lab[name] == version for name, version in service.items())


@pytest.mark.slow
def test_service_requirements_resolve_with_pip(tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-qq",
                           "--report", str(report), "-r", str(REPO / "tinyvit" / "requirements.txt")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved["mlserver"] == "1.7.1" and resolved["torch"] == "2.14.1"


def test_build_context_carries_weights_binds_all_interfaces_and_has_the_dockerfile(tmp_path):
    before = folder_digest(REPO / "tinyvit")
    context = packaging.build_context("tinyvit", target=tmp_path / "tinyvit")
    assert folder_digest(REPO / "tinyvit") == before, "the student's folder must not change"
    assert (context / packaging.WEIGHTS_NAME).is_file()
    assert json.loads((context / "model-settings.json").read_text())["parameters"]["uri"] == "./tinyvit.safetensors"
    assert json.loads((context / "settings.json").read_text())["host"] == "0.0.0.0"
    dockerfile = (context / "Dockerfile").read_text()
    assert packaging.dockerfile_stages(dockerfile) == [("continuumio/miniconda3:24.4.0-0", "env-builder"),
                                                        ("seldonio/mlserver:1.7.1-slim", None)]
    assert "./requirements.tx[t]" in dockerfile and "\nCOPY . .\n" in dockerfile
    assert "mlserver start $MLSERVER_MODELS_DIR" in dockerfile


def test_kserve_manifest_serves_the_image_with_v2_and_health_probes():
    manifest = yaml.safe_load((REPO / "deploy" / "kserve-inferenceservice.yaml").read_text())
    assert manifest["kind"] == "InferenceService" and manifest["apiVersion"].startswith("serving.kserve.io/")
    predictor = manifest["spec"]["predictor"]
    assert predictor["minReplicas"] >= 1 and predictor["maxReplicas"] >= predictor["minReplicas"]
    [container] = predictor["containers"]
    assert container["image"].endswith("tinyvit:0.1")
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert [port["containerPort"] for port in container["ports"]] == [8080]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/models/tinyvit/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}


def test_terminal_prints_what_the_command_prints_and_fails_like_it(capsys):
    assert terminal("python -c \"print('written by the command'); import sys; print(sys.prefix)\"") is None
    printed = capsys.readouterr().out
    assert "written by the command" in printed and sys.prefix in printed  # this environment's python
    terminal("mlserver --version")
    assert version("mlserver") in capsys.readouterr().out  # this environment's mlserver
    with pytest.raises(RuntimeError, match="failed with exit status 3"):
        terminal("python -c 'import sys; sys.exit(3)'")
    with pytest.raises(ValueError, match="starts with 'mlserver' or 'python'"):
        terminal("rm -rf /tmp/nothing")
    with pytest.raises(ValueError, match="mlserver start <folder>"):
        terminal("mlserver start")
    with pytest.raises(TypeError, match="go with `mlserver start` only"):
        terminal("mlserver --version", parallel_workers=2)
