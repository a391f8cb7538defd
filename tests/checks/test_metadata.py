"""Notebook 01's metadata check on a real server running the student's single-image service
(the solution's): a declaration that describes the service passes however it is written; one
that the service contradicts fails naming the field; and MLServer itself enforces none of it."""

import json
import re

import nbformat
import pytest
import requests

from labkit import checks
from labkit.client import load_image
from labkit.instructor.build import SOLUTIONS
from labkit.serving import ModelServer
from labkit.workspace import service_folder
from tests.helpers.lab import FREE_PORTS, reload_with

pytestmark = pytest.mark.slow

RIGHT = {"inputs": [{"name": "payload", "datatype": "UINT8", "shape": [-1, -1, 3]}],
         "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [1, 21841]}]}


def first_service_code() -> str:
    cells = nbformat.read(SOLUTIONS / "01_first_service.ipynb", as_version=4).cells
    cell = next(cell for cell in cells if cell.metadata.get("nbgrader", {}).get("grade_id") == "first-service")
    return cell.source.split("\n", 1)[1]


def settings_with(declaration: dict) -> dict:
    return {"model-settings.json": json.dumps({"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel",
                                               **declaration})}


@pytest.fixture(scope="module")
def first_service(tmp_path_factory, checkpoint):
    folder = service_folder(tmp_path_factory.mktemp("nb01") / "my-tinyvit", checkpoint=checkpoint)
    (folder / "serve-model.py").write_text(first_service_code())
    (folder / "model-settings.json").write_text(settings_with(RIGHT)["model-settings.json"])
    with ModelServer(folder, parallel_workers=0, **FREE_PORTS) as server:
        yield server


@pytest.mark.parametrize("declaration", [
    RIGHT,
    # Written differently: any colour axis, a batch-free output of any length, a content type.
    {"inputs": [{"name": "payload", "datatype": "UINT8", "shape": [-1, -1, -1], "parameters": {"content_type": "np"}}],
     "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1, -1]}]},
    {"inputs": [{"name": "payload", "datatype": "UINT8", "shape": [-1, -1, 3]}],
     "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1, 21841]}]},
])
def test_a_declaration_that_describes_the_service_passes(first_service, checkpoint, declaration, capsys):
    server = reload_with(first_service, settings_with(declaration))
    checks.declared_metadata(server, checkpoint=checkpoint)
    assert "requests built from that metadata alone, for 2 images" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    ({}, "lists no inputs"),
    ({"outputs": []}, "lists no outputs"),
    ({"inputs": [{**RIGHT["inputs"][0], "datatype": "FP32"}]},
     "another datatype in inputs[0]: the declared datatype (FP32)"),
    ({"inputs": [{**RIGHT["inputs"][0], "shape": [-1, -1, -1, 3]}]}, "another shape in inputs[0]"),
    ({"inputs": [{**RIGHT["inputs"][0], "name": "image"}]},
     "inputs[0].name is 'image', but your predict() reads an input of another name"),
    # Sizes fixed that the service takes in any size (requests resized to them would pass):
    # a fixed size, and the channels-first order of torch's tensors.
    ({"inputs": [{**RIGHT["inputs"][0], "shape": [224, 224, 3]}]}, "inputs[0].shape [224, 224, 3] fixes an image's"),
    ({"inputs": [{**RIGHT["inputs"][0], "shape": [3, -1, -1]}]}, "3 first reads like colour channels first"),
    ({"inputs": [{**RIGHT["inputs"][0], "shape": [-1, -1, 4]}]}, "declares 4 values per pixel"),
    # helper session 4: a second input was named as an image with too few axes
    ({"inputs": [RIGHT["inputs"][0], {"name": "scale", "datatype": "FP32", "shape": [1]}]}, "lists 2 inputs"),
    # The lab's service's name, copied: the answer of notebook 01's service is not called that.
    ({"outputs": [{**RIGHT["outputs"][0], "name": "probabilities"}]}, "outputs[0].name is 'probabilities'"),
    ({"outputs": [{**RIGHT["outputs"][0], "datatype": "FP64"}]}, "outputs[0].datatype is 'FP64'"),
    ({"outputs": [{**RIGHT["outputs"][0], "shape": [21841]}]}, "outputs[0].shape is [21841]"),
    ({"outputs": [{**RIGHT["outputs"][0], "shape": [1, 1000]}]}, "outputs[0].shape is [1, 1000]"),
])
def test_a_declaration_the_service_contradicts_fails_naming_the_field(first_service, checkpoint, change, message):
    declaration = {**RIGHT, **change} if change else {}
    server = reload_with(first_service, settings_with(declaration))
    with pytest.raises(checks.CheckFailed, match=re.escape(message)) as caught:
        checks.declared_metadata(server, checkpoint=checkpoint)
    assert "output-0" not in caught.value.hint and "UINT8" not in caught.value.hint  # the fix is not handed over
    assert "Available inputs" not in caught.value.what and "length 3" not in caught.value.hint


def test_mlserver_enforces_none_of_the_declaration(first_service):
    # What notebook 01 tells the student, measured: a request that contradicts the declared
    # datatype reaches predict() (a 500 from the service's own code, not MLServer's 400), and
    # the answer keeps the name the code gives it, whatever the declaration says.
    server = reload_with(first_service, settings_with({**RIGHT, "outputs": [{**RIGHT["outputs"][0],
                                                                             "name": "probabilities"}]}))
    image = load_image(size=(40, 30))
    body = {"inputs": [{"name": "payload", "datatype": "UINT8", "shape": list(image.shape),
                        "data": image.ravel().tolist()}]}
    answer = requests.post(server.infer_url, json=body, timeout=60)
    assert answer.status_code == 200 and answer.json()["outputs"][0]["name"] == "output-0"
    contradicting = {"inputs": [{**body["inputs"][0], "datatype": "FP32"}]}
    assert requests.post(server.infer_url, json=contradicting, timeout=60).status_code == 500


def test_the_check_given_the_folder_uses_the_students_running_server(first_service, checkpoint, capsys):
    reload_with(first_service, settings_with(RIGHT))
    checks.declared_metadata(first_service.model_dir, checkpoint=checkpoint)
    assert "GET /v2/models/my-tinyvit" in capsys.readouterr().out
    # The notebook's cell passes its dict too: tuples are lists once written as JSON.
    as_tuples = {"inputs": [{**RIGHT["inputs"][0], "shape": (-1, -1, 3)}], "outputs": RIGHT["outputs"]}
    checks.declared_metadata(first_service.model_dir, as_tuples, checkpoint=checkpoint)
    assert "does not serve this declaration" not in capsys.readouterr().out


def test_a_part_under_a_key_mlserver_ignores_is_named_by_that_key():
    # helper session 17: "input" was told "lists no inputs", and the hint handed over the key
    from labkit.checks.metadata import _check_declared

    with pytest.raises(checks.CheckFailed) as failure:
        _check_declared({"input": RIGHT["inputs"], "outputs": RIGHT["outputs"]}, "The declaration")
    assert "The declaration's 'input': MLServer has no such field and ignores it" in failure.value.what
    assert '"inputs"' not in str(failure.value)


def test_axis_lengths_mlserver_reads_as_numbers_pass_as_written(first_service, checkpoint, capsys):
    # helper session 17: ["-1", "-1", "3"] and [1, 21841.0] were refused ("a shape is a list of axis
    # lengths"), while the server they started served the solution's metadata.
    written = {"inputs": [{**RIGHT["inputs"][0], "shape": ["-1", "-1", "3"]}],
               "outputs": [{**RIGHT["outputs"][0], "shape": [1, 21841.0]}]}
    reload_with(first_service, settings_with(written))
    checks.declared_metadata(first_service.model_dir, written, checkpoint=checkpoint)
    out = capsys.readouterr().out
    assert "does not serve this declaration" not in out and "requests built from that metadata alone" in out
    assert written["inputs"][0]["shape"] == ["-1", "-1", "3"]  # the student's dict as it was


def test_a_server_started_before_the_declaration_is_named_stale_not_missing(first_service, checkpoint, capsys):
    # helper session 10: "does not serve this declaration", then "No server of my-tinyvit/ runs in
    # this kernel" while it ran.
    reload_with(first_service, settings_with({}))
    checks.declared_metadata(first_service.model_dir, RIGHT, checkpoint=checkpoint)
    out = capsys.readouterr().out
    assert "does not serve this declaration" in out and "No server of" not in out, out


def test_a_malformed_declaration_that_mlserver_refuses_to_load_is_named_from_the_file(first_service, tmp_path,
                                                                                     checkpoint):
    # MLServer does check the form: a datatype it does not know fails the model's load, so no
    # server runs and the check reads the file.
    folder = service_folder(tmp_path / "my-tinyvit", checkpoint=checkpoint)
    (folder / "serve-model.py").write_text(first_service_code())
    bad = {**RIGHT, "inputs": [{**RIGHT["inputs"][0], "datatype": "uint8"}]}
    (folder / "model-settings.json").write_text(settings_with(bad)["model-settings.json"])
    with pytest.raises(checks.CheckFailed, match=re.escape("inputs[0].datatype is 'uint8'")):
        checks.declared_metadata(folder, checkpoint=checkpoint)


def test_a_class_name_mistake_of_exercise_1_does_not_cost_the_declaration(tmp_path, checkpoint, capsys):
    # The student's start failed (their implementation names no class): the check starts the
    # service with Exercise 1's class and the student's own declaration.
    folder = service_folder(tmp_path / "my-tinyvit", checkpoint=checkpoint)
    (folder / "serve-model.py").write_text(first_service_code())
    settings = json.loads(settings_with(RIGHT)["model-settings.json"])
    (folder / "model-settings.json").write_text(json.dumps({**settings, "implementation": "serve-model.TinyVitModel"}))
    # Exercise 2's trailing comma too (helper session 5: it crashed this check, whose own server
    # read the student's settings.json): the check's server leaves that file out.
    (folder / "settings.json").write_text('{"host": "127.0.0.1", "parallel_workers": 0, "debug": false,}')
    try:
        checks.declared_metadata(folder, checkpoint=checkpoint)
        # Exercise 3's mistake, a tensor returned: every request refused, whatever is declared.
        # Named as the service's, not as a field of the declaration (helper session 5).
        code = first_service_code()
        assert ".numpy()" in code
        (folder / "serve-model.py").write_text(code.replace(".numpy()", ""))
        with pytest.raises(checks.CheckFailed, match="even sent as notebook 01's service takes an image") as caught:
            checks.declared_metadata(folder, checkpoint=checkpoint)
        assert "first-service-check" in str(caught.value) and "Exercise 3" in caught.value.hint
    finally:
        from labkit.checks import students_server as live

        started = live._started_by_checks.pop(folder.resolve(), None)
        if started is not None:
            started.stop()
    assert "This check starts my-tinyvit/serve-model.py itself" in capsys.readouterr().out
