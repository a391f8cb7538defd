"""Notebook 01's file checks, notebook 02's request check and notebook 06's packaging
checks: a right answer passes, each plausible mistake fails with a message that names it."""

import re
import shutil

import nbformat
import numpy as np
import pytest
import requests
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from labkit import checks, folder_checks, packaging
from labkit.notebooks import SOLUTIONS
from labkit.workspace import lab_service_copy, service_folder


def solution_cell(notebook: str, grade_id: str) -> str:
    cells = nbformat.read(SOLUTIONS / notebook, as_version=4).cells
    return next(cell.source for cell in cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def written(cell: str) -> str:
    """The file a %%writefile cell writes."""
    assert cell.startswith("%%writefile ")
    return cell.split("\n", 1)[1] + "\n"


def mutate(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the solution"
    return text.replace(old, new)


@pytest.fixture
def folder(tmp_path, checkpoint):
    folder = service_folder(tmp_path / "my-tinyvit", checkpoint=checkpoint)
    for grade_id, name in (("model-settings", "model-settings.json"), ("server-settings", "settings.json"),
                           ("first-service", "serve-model.py")):
        (folder / name).write_text(written(solution_cell("01_first_service.ipynb", grade_id)))
    return folder


def test_the_solution_files_pass(folder, checkpoint, capsys):
    folder_checks.model_settings(folder)
    folder_checks.server_settings(folder)
    folder_checks.service(folder, checkpoint)
    assert capsys.readouterr().out.count("✔") == 3


@pytest.mark.parametrize("old, new, message", [
    ('"serve-model.TinyViTModel"\n', '"serve-model.TinyViTModel",\n', "trailing comma on line 3"),
    ('"serve-model.TinyViTModel"', '"serve-model.py.TinyViTModel"', "not a file path"),
    ('"serve-model.TinyViTModel"', '"serve-model"', "<python file>.<class>"),
    ('"name": "my-tinyvit",', '', 'no "name"'),
])
def test_model_settings_mistakes_are_named(folder, old, new, message):
    path = folder / "model-settings.json"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message.replace("(", r"\(").replace(".", r"\.")):
        folder_checks.model_settings(folder)


@pytest.mark.parametrize("old, new, message", [
    ('"host": "127.0.0.1",', '', "0.0.0.0"),
    ('"host": "127.0.0.1",', '"host": "0.0.0.0",', "every network interface"),
    ('"debug": false', '"debug": false, "max_batch_size": 8, "max_batch_time": 0.01', "ignored, silently"),
    ('"parallel_workers": 1', '"parallel_workers": "two"', "whole number"),
])
def test_server_settings_mistakes_are_named(folder, old, new, message):
    path = folder / "settings.json"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message):
        folder_checks.server_settings(folder)


@pytest.mark.parametrize("file, old, new, message", [
    ("model-settings.json", "serve-model.TinyViTModel", "serve_model.TinyViTModel", "names serve_model.py"),
    ("model-settings.json", "serve-model.TinyViTModel", "serve-model.TinyVitModel", "defines no class TinyVitModel"),
    ("serve-model.py", ".softmax(dim=-1)", "", "logits, not probabilities"),
    ("serve-model.py", "        return True\n", "", "returned None"),
    ("serve-model.py", "from model_weights import load_tinyvit", "from model_weight import load_tinyvit",
     "Importing serve-model.py failed"),
])
def test_service_mistakes_are_named(folder, checkpoint, file, old, new, message):
    path = folder / file
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message):
        folder_checks.service(folder, checkpoint)


def test_an_untouched_service_says_it_is_not_written(folder, checkpoint):
    code = (folder / "serve-model.py").read_text()
    start, end = code.index("        ### BEGIN SOLUTION"), code.index("### END SOLUTION") + len("### END SOLUTION")
    (folder / "serve-model.py").write_text(code[:start] + "        raise NotImplementedError()" + code[end:])
    with pytest.raises(checks.CheckFailed, match="not written yet"):
        folder_checks.service(folder, checkpoint)


# ---------------------------------------------------------------- notebook 02's request check

def remote(server, batch_axis=True, name="payload", dtype=None, use_dict=False, fixed_image=None):
    """classify_remote as a student might write it, right or with one mistake."""
    def classify_remote(image):
        image = fixed_image if fixed_image is not None else image
        array = image[None] if batch_axis else image
        if dtype is not None:
            array = array.astype(dtype)
        request = InferenceRequest(inputs=[NumpyCodec.encode_input(name, array)])
        if use_dict:
            answer = requests.post(server.infer_url, json=request.dict(), timeout=60)
        else:
            answer = requests.post(server.infer_url, data=request.model_dump_json(), timeout=60,
                                   headers={"Content-Type": "application/json"})
        answer.raise_for_status()
        return NumpyCodec.decode_output(InferenceResponse.model_validate(answer.json()).outputs[0])
    return classify_remote


@pytest.mark.slow
def test_the_request_check(server, checkpoint, cat, capsys):
    checks.remote_classifier(remote(server), checkpoint)
    assert "✔" in capsys.readouterr().out
    cases = [(dict(batch_axis=False), "without the batch axis"), (dict(name="image"), "named 'image'"),
             (dict(dtype=np.float32), "datatype is FP32"), (dict(use_dict=True), "deprecated"),
             (dict(fixed_image=cat), "same probabilities for 3 different images")]
    for mistake, message in cases:
        with pytest.raises(checks.CheckFailed, match=message) as caught:
            checks.remote_classifier(remote(server, **mistake), checkpoint)
        # Feedback names the mistake; it does not hand over the line that fixes it.
        assert not any(code in str(caught.value) for code in ("[None]", "np.newaxis", "image["))
    stored = remote(server)(cat)
    with pytest.raises(checks.CheckFailed, match="sent no request"):
        checks.remote_classifier(lambda image: stored, checkpoint)


@pytest.fixture
def shipped(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "requirements.txt").write_text(written(solution_cell("06_packaging.ipynb", "requirements")))
    return folder


@pytest.mark.parametrize("old, new, message", [
    ("torch==2.14.1", "torch=2.14.1=py311_cuda", "conda's format"),
    ("torch==2.14.1", "torch>=2.0", "torch is not pinned"),
    ("timm==1.0.31", "timm==0.9.16", "not the version this lab runs"),
    ("pillow==13.0.0\n", "", "['pillow']"),
    ("uvloop==0.21.0\n", "", "uvloop is not kept below 0.22"),
    ("uvloop==0.21.0", "uvloop>=0.21", "uvloop is not kept below 0.22"),
    ("numpy==2.4.6", "numpy==", "not a pip requirement"),
])
def test_requirements_mistakes_are_named(shipped, old, new, message):
    path = shipped / "requirements.txt"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=re.escape(message)):
        folder_checks.requirements(shipped)


def test_the_image_folder_needs_the_dockerfile_mlserver_writes(shipped, checkpoint, capsys):
    folder_checks.requirements(shipped)
    service = lab_service_copy(shipped.parent / "service", checkpoint=checkpoint, with_settings=True)
    shutil.copy(shipped / "requirements.txt", service / "requirements.txt")
    context = packaging.build_context(service, target=shipped.parent / "context", checkpoint=checkpoint,
                                      dockerfile=False)
    assert not (context / packaging.WEIGHTS_NAME).is_symlink()
    with pytest.raises(checks.CheckFailed, match="has no Dockerfile"):
        folder_checks.image_folder(context)
    packaging.run_mlserver(f"mlserver dockerfile {context}")
    assert "Successfully written Dockerfile" in capsys.readouterr().out
    folder_checks.image_folder(context)
    (context / packaging.WEIGHTS_NAME).unlink()
    with pytest.raises(checks.CheckFailed, match="no weights"):
        folder_checks.image_folder(context)
