"""Notebook 01's file checks, notebook 02's request check and notebook 06's packaging
checks: a right answer passes, each plausible mistake fails with a message that names it."""

import json
import re

import pytest

from labkit import checks
from labkit.workspace import service_folder
from tests.helpers.solutions import solution_cell, written, mutate






def test_the_solution_files_pass(folder, checkpoint, capsys):
    checks.model_settings(folder)
    checks.server_settings(folder)
    checks.service(folder, checkpoint)
    assert capsys.readouterr().out.count("✔") == 3


@pytest.mark.parametrize("old, new, message", [
    ('"serve-model.TinyViTModel"\n', '"serve-model.TinyViTModel",\n', "trailing comma on line 3"),
    ('"serve-model.TinyViTModel"', '"serve-model.py.TinyViTModel"', "not a file path"),
    ('"serve-model.TinyViTModel"', '"serve-model"', "<python file>.<class>"),
    ('"name": "my-tinyvit",', '', 'no "name"'),
    ('"name": "my-tinyvit",', '"name": "tinyvit",', "this exercise's model is called 'my-tinyvit'"),
    # implementation must resolve: the file, the class, a subclass of MLModel.
    ("serve-model.TinyViTModel", "serve_model.TinyViTModel", "names serve_model.py"),
    ("serve-model.TinyViTModel", "serve-model.TinyVitModel", "defines no class TinyVitModel"),
    ("serve-model.TinyViTModel", "serve-model.Image", "not a subclass of mlserver.MLModel"),
    # a unit mistake that "works" under load: milliseconds written as seconds.
    ('"name": "my-tinyvit",', '"name": "my-tinyvit", "max_batch_size": 8, "max_batch_time": 10,',
     "wait 10 s for company"),
    ('"name": "my-tinyvit",', '"name": "my-tinyvit", "max_batch_size": 2.5,', "whole number"),
    # grades the same everywhere: a uri copied from runtimes/ works here and not where grading runs.
    ('"name": "my-tinyvit",', '"name": "my-tinyvit", "parameters": {"uri": "../../weights/tinyvit.safetensors"},',
     "points outside my-tinyvit/"),
])
def test_model_settings_mistakes_are_named(folder, old, new, message):
    path = folder / "model-settings.json"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message.replace("(", r"\(").replace(".", r"\.")):
        checks.model_settings(folder)


@pytest.mark.parametrize("old, new, message", [
    ('"host": "127.0.0.1",', '', "0.0.0.0"),
    ('"host": "127.0.0.1",', '"host": "0.0.0.0",', "every network interface"),
    ('"debug": false', '"debug": false, "max_batch_size": 8, "max_batch_time": 0.01', "ignored, silently"),
    ('"parallel_workers": 0', '"parallel_workers": "two"', "whole number"),
])
def test_server_settings_mistakes_are_named(folder, old, new, message):
    path = folder / "settings.json"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message):
        checks.server_settings(folder)


def test_an_empty_settings_file_says_so(folder):
    # What the released exercise cell writes when it is run untouched: its %%writefile line alone.
    (folder / "model-settings.json").write_text("")
    with pytest.raises(checks.CheckFailed, match="is empty"):
        checks.model_settings(folder)


def test_a_settings_file_saved_as_utf16_is_named_not_a_traceback(folder):
    # helper session 15: a UnicodeDecodeError through labkit (PowerShell 5's Out-File writes UTF-16)
    (folder / "settings.json").write_bytes('{"host": "127.0.0.1", "parallel_workers": 0}'.encode("utf-16"))
    with pytest.raises(checks.CheckFailed, match="is not UTF-8 text"):
        checks.server_settings(folder)


def test_settings_written_before_the_code_pass_the_write_check_but_not_the_graded_one(folder, capsys):
    (folder / "serve-model.py").unlink()
    checks.model_settings(folder, require_code=False)
    assert "checked once serve-model.py exists" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match=r"names serve-model\.py"):
        checks.model_settings(folder)


@pytest.mark.parametrize("batching, message", [
    (None, "adaptive batching stays off"),
    ('"max_batch_size": 1, "max_batch_time": 0.01,', "batching stays off"),
    ('"max_batch_size": 2, "max_batch_time": 0.5,', "the exercise asks for other values"),
    ('"max_batch_time": 0.010, "max_batch_size": 8,', None),  # another order, another spelling
])
def test_batching_as_the_exercise_asks(folder, batching, message):
    path = folder / "model-settings.json"
    if batching:
        path.write_text(mutate(path.read_text(), '"name": "my-tinyvit",', '"name": "my-tinyvit", ' + batching))
    if message is None:
        checks.model_settings(folder, batching=(8, 0.01))
        return
    with pytest.raises(checks.CheckFailed, match=message):
        checks.model_settings(folder, batching=(8, 0.01))


def test_01s_server_settings_ask_for_debug_off(folder):
    path = folder / "settings.json"
    checks.server_settings(folder, expected_workers=0, debug_off=True)
    path.write_text('{"parallel_workers": 0, "host": "localhost", "debug": false}')
    checks.server_settings(folder, expected_workers=0, debug_off=True)
    path.write_text('{"host": "127.0.0.1", "parallel_workers": 0}')
    with pytest.raises(checks.CheckFailed, match="defaults to true"):
        checks.server_settings(folder, expected_workers=0, debug_off=True)
    path.write_text('{"host": "127.0.0.1", "debug": false}')  # workers left at MLServer's default
    with pytest.raises(checks.CheckFailed, match="sets no parallel_workers, so MLServer runs its default, 1"):
        checks.server_settings(folder, expected_workers=0, debug_off=True)


@pytest.mark.parametrize("implementation", ["serve_model.TinyViTModel", "serve-model.TinyVitModel"])
def test_a_wrong_implementation_costs_the_settings_exercise_only(folder, checkpoint, implementation):
    # One mistake, one exercise: the service check loads the class the exercise names.
    path = folder / "model-settings.json"
    path.write_text(mutate(path.read_text(), "serve-model.TinyViTModel", implementation))
    with pytest.raises(checks.CheckFailed):
        checks.model_settings(folder)
    checks.service(folder, checkpoint)
    path.write_text(path.read_text().replace('"implementation"', '"implementation",'))  # not even JSON
    checks.service(folder, checkpoint)


def test_a_settings_file_that_does_not_read_stops_the_start_with_its_name_and_a_check_starts_without_it(folder):
    # helper session 5: a trailing comma in settings.json raised a bare JSONDecodeError from the
    # lab's code at the start, and crashed Exercise 4's check, which starts the service itself.
    from labkit.serving.runcopy import ServerOptions, run_server_settings
    from labkit.serving import ModelServer, ServerStartError

    path = folder / "settings.json"
    path.write_text(mutate(path.read_text(), "\"debug\": false", "\"debug\": false,"))
    with pytest.raises(ServerStartError, match="my-tinyvit/settings.json is not valid JSON: .*line 5"):
        ModelServer(folder, http_port=0, grpc_port=0, metrics_port=0).start(progress=False)
    given = ServerOptions(model_settings={"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel"})
    assert run_server_settings(folder, given, {"http_port": 1})["host"] == "127.0.0.1"
    assert "not a server" in repr(ModelServer(folder)) or "stopped" in repr(ModelServer(folder))


# ---------------------------------------------------------------- notebook 02's request check


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, checkpoint):
    from labkit.model import hf_service

    return hf_service.artifact_folder(tmp_path_factory.mktemp("04") / "tinyvit-hf", checkpoint)


HF_SETTINGS = written(solution_cell("04_inference_runtimes.ipynb", "hf-settings"))


def test_04s_hugging_face_settings_pass_as_the_solution_and_written_differently(hf_folder, capsys):
    (hf_folder / "model-settings.json").write_text(HF_SETTINGS)
    checks.hf_model_settings(hf_folder)
    # Keys in another order, PyTorch named, Optimum left at its default, a device set.
    (hf_folder / "model-settings.json").write_text(
        '{"parameters": {"extra": {"framework": "pt", "device": "cpu", "task": "image-classification"}},\n'
        ' "implementation": "labkit.runtimes.huggingface.HuggingFaceRuntime", "name": "tinyvit-hf"}')
    checks.hf_model_settings(hf_folder)
    assert capsys.readouterr().out.count("✔ model-settings.json: model 'tinyvit-hf', the Hugging Face runtime") == 2


@pytest.mark.parametrize("old, new, message", [
    ('"task": "image-classification"', '"task": "image-classification", '
                                       '"pretrained_model": "timm/tiny_vit_5m_224.dist_in22k"',
     "a model on the Hugging Face hub"),
    ('"task": "image-classification"', '"task": "image-classification", "pretrained_model": "."',
     "read from where MLServer runs"),
    ('"extra"', '"uri": "./config.json", "extra"', "parameters.uri is './config.json'"),
    ('labkit.runtimes.huggingface.HuggingFaceRuntime', 'mlserver_huggingface.HuggingFaceRuntime',
     "cannot import name 'Conversation'"),
    ('labkit.runtimes.huggingface.HuggingFaceRuntime', 'labkit.runtimes.timm.TimmClassifier',
     "not the Hugging Face runtime"),
    ('"image-classification"', '"image_classification"', "task is 'image_classification'"),
    ('"optimum_model": false', '"optimum_model": true', "serves the model with PyTorch"),
    ('"optimum_model": false', '"optimum_model": "yes"', "lower case and unquoted"),
    ('"optimum_model": false', '"optimum_model": false, "framework": "tf"', "are PyTorch's"),
    ('"name": "tinyvit-hf"', '"name": "tinyvit"', "called 'tinyvit-hf', like its folder"),
    ('    "extra": {"task": "image-classification", "optimum_model": false}\n', '', "no parameters.extra"),
])
def test_04s_hugging_face_settings_mistakes_are_named(hf_folder, old, new, message):
    (hf_folder / "model-settings.json").write_text(mutate(HF_SETTINGS, old, new))
    with pytest.raises(checks.CheckFailed, match=re.escape(message)):
        checks.hf_model_settings(hf_folder)


def test_04s_hugging_face_check_needs_the_folder_the_lab_made(tmp_path):
    (tmp_path / "tinyvit-hf").mkdir()
    (tmp_path / "tinyvit-hf" / "model-settings.json").write_text(HF_SETTINGS)
    with pytest.raises(checks.CheckFailed, match="holds no model"):
        checks.hf_model_settings(tmp_path / "tinyvit-hf")


TOP3 = {"name": "top3", "implementation": "labkit.runtimes.timm.TimmClassifier",
        "parameters": {"uri": "tinyvit.safetensors", "extra": {"model": "tiny_vit_5m_224.dist_in22k", "top_k": 3}}}


@pytest.mark.parametrize("change, message", [
    # helper session 4: each passed when written, and failed only at the server's start
    ({"parameters": {"extra": TOP3["parameters"]["extra"]}}, 'parameters has no "uri"'),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224.dist_in22k", "top_k": "3"}}},
     "top_k is '3'"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224.dist_in22k", "top_k": 3.0}}},
     "top_k is 3.0"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model_name": "tiny_vit_5m_224.dist_in22k", "top_k": 3}}},
     'parameters.extra has no "model"'),
    ({"parameters": {**TOP3["parameters"], "extra": {**TOP3["parameters"]["extra"], "topk": 3}}},
     'did you mean "top_k"'),
    # helper session 5: the course text's hub name, ✔ when written, then "check your connection" after 30 s
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "hf_hub:timm/tiny_vit_5m_224.dist_in22k",
                                                     "top_k": 3}}}, "a model on the Hugging Face hub"),
    # helper session 6: ✔ when written, then a state_dict mismatch, an invalid tag or a bare
    # FileNotFoundError at the server's start
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224.dist_in22k_ft_in1k", "top_k": 3}}},
     "the '.dist_in22k_ft_in1k' version of TinyViT has other classes"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_11m_224.dist_in22k", "top_k": 3}}},
     "'tiny_vit_11m_224' is another network"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224.dist_in22k ", "top_k": 3}}},
     "it has a space at one end"),
    # helper session 13: named as another network
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "TINY_VIT_5M_224.DIST_IN22K", "top_k": 3}}},
     "timm spells its names in lower case with underscores"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny-vit-5m-224.dist_in22k", "top_k": 3}}},
     "timm spells its names in lower case with underscores"),
    ({"implementation": "mlserver_timm.TimmClassifier"}, "reads like one of MLServer's runtime packages"),
    ({"parameters": {**TOP3["parameters"], "uri": "."}}, "parameters.uri is '.', a folder"),
    # helper session 8: "threads" passed (nothing reads it) and torch_threads was refused
    ({"parameters": {**TOP3["parameters"], "extra": {**TOP3["parameters"]["extra"], "threads": 2}}},
     'parameters.extra.threads is not a field the timm runtime reads; it ignores it (did you mean "torch_threads"?)'),
    ({"parameters": {**TOP3["parameters"], "extra": {**TOP3["parameters"]["extra"], "torch_threads": "two"}}},
     "parameters.extra.torch_threads is 'two'"),
    # helper session 8: the space unseen ("defines no class X (it defines ['X'])"), the module
    # called "not a subclass", an installed package taken for a file still to be written
    ({"implementation": "labkit.runtimes.timm.TimmClassifier "}, "TimmClassifier ', with a space at one end"),
    ({"implementation": "labkit.runtimes.timm"}, "ends with timm, which is a module (labkit.runtimes.timm)"),
    ({"implementation": "timm.TimmClassifier"}, "MLServer would import the installed package timm instead"),
])
def test_the_timm_runtimes_settings_are_checked_when_written(tmp_path, checkpoint, change, message):
    from labkit.workspace import runtime_folder

    folder = runtime_folder(tmp_path / "top3", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(json.dumps(TOP3))
    checks.model_settings(folder, require_code=False)  # the solution passes
    # and the architecture alone (timm's default version of it), helper session 6
    (folder / "model-settings.json").write_text(json.dumps(
        {**TOP3, "parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224", "top_k": 3}}}))
    checks.model_settings(folder, require_code=False)
    # and the threads the runtime reads, set (helper session 8: refused)
    (folder / "model-settings.json").write_text(json.dumps(
        {**TOP3, "parameters": {**TOP3["parameters"], "extra": {**TOP3["parameters"]["extra"], "torch_threads": 1}}}))
    checks.model_settings(folder, require_code=False)
    (folder / "model-settings.json").write_text(json.dumps({**TOP3, **change}))
    with pytest.raises(checks.CheckFailed, match=re.escape(message)):
        checks.model_settings(folder, require_code=False)


def test_03s_class_renamed_in_the_file_is_named_before_any_start_and_spares_the_settings(tmp_path, checkpoint,
                                                                                          capsys):
    # helper session 5: `class TopFiveModels` failed top5-settings-check too, and each service check
    # waited 15-20 s for MLServer's "Invalid python path: No module named 'serve-model.TopFiveModel'".
    from labkit.checks import students_server as live

    folder = service_folder(tmp_path / "top5", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(json.dumps({"name": "top5",
                                                            "implementation": "serve-model.TopFiveModel"}))
    code = written(solution_cell("03_top5_labels.ipynb", "top5-service"))
    (folder / "serve-model.py").write_text(mutate(code, "class TopFiveModel(", "class TopFiveModels("))
    checks.model_settings(folder)
    assert "as the exercise asks" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match=r"defines no class TopFiveModel \(it defines \['TopFiveModels'\]\)"):
        live.service_server(folder)
    assert "No server of top5/ runs" not in capsys.readouterr().out  # named before any start


def test_a_logging_file_is_read_from_beside_the_folder_as_mlserver_start_reads_it(folder):
    # helper session 10: a logging_settings file that does not exist passed; one that does, beside the
    # folder where `mlserver start <folder>` runs, must be found by the run copy (in another folder) too.
    from labkit.serving.runcopy import ServerOptions, run_server_settings

    path = folder / "settings.json"
    settings = json.loads(path.read_text())
    path.write_text(json.dumps({**settings, "logging_settings": "logging.json"}))
    with pytest.raises(checks.CheckFailed, match="names no file"):
        checks.server_settings(folder)
    (folder.parent / "logging.json").write_text('{"version": 1}')
    checks.server_settings(folder)
    given = run_server_settings(folder, ServerOptions(), {"http_port": 1})
    assert given["logging_settings"] == str(folder.parent / "logging.json")
