"""The two JSON files of a service folder, read the way MLServer reads them:
``model-settings.json`` (:func:`model_settings`: which model, which class, per-model knobs such
as adaptive batching) and ``settings.json`` (:func:`server_settings`: how the whole server runs).
Each names what is wrong in the student's terms: invalid JSON (a trailing comma), a missing
field, an ``implementation`` that does not resolve, a setting in the wrong file (adaptive
batching in ``settings.json`` is silently ignored by MLServer), a unit mistake, a missing
``host: 127.0.0.1``."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from labkit.checks.json_file import read_json
from labkit.checks.feedback import CheckFailed, passed
from labkit.checks.student_code import installed_elsewhere, resolve_implementation
from labkit.model.hf_service import HF_IMPLEMENTATION
from labkit.paths import PathLike
from labkit.serving import mlserver_settings

BATCHING_KEYS = ("max_batch_size", "max_batch_time")
SERVER_ONLY_KEYS = ("host", "http_port", "grpc_port", "metrics_port", "debug", "gzip_enabled")


# A lone request waits up to max_batch_time for company: more than this is a unit mistake
# (milliseconds written as seconds), which "works" under load, where batches fill up at once.
LONGEST_BATCH_WAIT_SECONDS = 1.0


def _stripped_by_mlserver(implementation: object) -> bool:
    """Whether MLServer reads ``implementation`` without the spaces at its ends: an installed
    package's dotted path (pydantic strips it before the import), not a file of the model's folder,
    which MLServer imports by the name as written (helper session 17: "...TimmClassifier " was
    refused here and in 04's graded check, and MLServer served it)."""
    import importlib.util

    text = str(implementation)
    module = text.strip().rpartition(".")[0]
    if text == text.strip() or "." not in module:
        return False
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def model_settings(folder: PathLike, batching: tuple[int, float] | None = None, require_code: bool = True) -> None:
    """``model-settings.json``: which model, which class, per-model knobs. The model's name is
    the folder's (what the exercise asks for, and what MLServer expects: it warns when they
    differ); ``implementation`` must resolve to a subclass of ``MLModel``, the way MLServer
    imports it (unless ``require_code`` is false and the file is not written yet);
    ``batching`` is the ``(max_batch_size, max_batch_time)`` the exercise asks for."""
    folder = Path(folder).resolve()
    content = read_model_settings(folder)
    _check_name(content, folder)
    if batching:
        _check_batching_on(content, *batching)
    implementation = content["implementation"]
    if _stripped_by_mlserver(implementation):
        implementation = str(implementation).strip()
    odd = [char for char in str(implementation) if char.isspace() or not char.isascii()]
    if odd:
        # helper sessions 10 and 11: a space at an end, a non-breaking hyphen or an en dash was named
        # as a file that does not exist, beside one that looked the same
        where = ("with a space at one end" if str(implementation) != str(implementation).strip() else
                 f"with {unicodedata.name(odd[0], repr(odd[0])).lower()} in it")
        raise CheckFailed(f"\"implementation\" is {implementation!r}, {where}: MLServer imports the name as "
                          "written, character for character, and no file or class of the folder has that name.",
                          "Type the name again with plain letters, digits, hyphens and dots only.")
    module, _, class_name = implementation.rpartition(".")
    if any(folder.glob("*.py")):  # a service folder (a runtime's folder, 04's top3/, has no code)
        _check_own_class(module, class_name, folder)
    # Not written yet: no file of that name (serve_model.py beside serve-model.py is a misnamed one).
    alike = {module, module.replace("_", "-"), module.replace("-", "_")}
    if (not require_code and "." not in module and not any((folder / f"{name}.py").is_file() for name in alike)
            and not installed_elsewhere(module) and not module.startswith("mlserver")):  # a runtime package
        passed(f"model-settings.json: model {content['name']!r}; class {class_name} is checked once "
               f"{module}.py exists")
        return
    try:
        resolve_implementation(folder, content["implementation"])
    except CheckFailed as failure:
        # The settings name the class the exercise asks for, and the service file calls its class
        # otherwise: the file's mistake, which its own check names (one mistake, one exercise).
        if content["implementation"] != EXERCISE_CLASSES.get(folder.name) or "defines no class" not in failure.what:
            raise
        passed(f"model-settings.json: model {content['name']!r}, class {class_name} from {module}, as the exercise "
               f"asks ({module}.py defines no class of that name: the service's own check counts that)")
        return
    if content["implementation"] == TIMM_RUNTIME:
        _check_timm_parameters(content, folder)
    if not batching:  # 05 asks for batching, of the lab's service, which takes it
        _check_batching_fits_the_service(content, folder / f"{module}.py")
    passed(f"model-settings.json: model {content['name']!r}, class {class_name} from {module}, a subclass "
           "of MLModel")


def _counts(value: object) -> bool:
    """A whole number, 1 or more, as JSON gives it (true is not 1 here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _pydantic_whole(value: object) -> bool:
    """Whether pydantic (MLServer's settings) reads ``value`` as an int, as its runtimes do."""
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(int).validate_python(value)
    except ValidationError:
        return False
    return True


def _names_a_gpu(device: object) -> bool:
    """A device number 0 or more, or a GPU's name as torch writes it."""
    if isinstance(device, bool):
        return False
    if isinstance(device, int):
        return device >= 0
    return isinstance(device, str) and (device.isdigit() or device.split(":")[0] in ("cuda", "mps", "xpu"))


def _check_batching_fits_the_service(content: dict, service_file: Path) -> None:
    """Adaptive batching on (both knobs set) for a predict() that ``@decode_args`` wraps:
    MLServer 1.7.1 refuses every request then ("Method predict can't be used for adaptive
    batching: method is not bound", HTTP 400; notebook 02 shows it), so the file passes
    nothing (helper session 5: ticked, and charged to notebook 01's declaration check)."""
    size, wait = content.get("max_batch_size") or 0, content.get("max_batch_time") or 0
    if not (size > 1 and wait > 0) or not service_file.is_file():
        return
    if re.search(r"^\s*@\s*(\w+\.)*decode_args\b", service_file.read_text(errors="replace"), re.M):
        raise CheckFailed(f"max_batch_size {size} and max_batch_time {wait:g} turn adaptive batching on, and "
                          f"{service_file.name}'s predict() is wrapped by @decode_args, which MLServer 1.7.1 "
                          "cannot batch: it would refuse every request with HTTP 400 (\"Method predict can't be "
                          "used for adaptive batching\").",
                          "This exercise's service takes one request at a time; leave batching off here.")


TIMM_RUNTIME = "labkit.runtimes.timm.TimmClassifier"
# The class each exercise's service folder serves, as the notebooks ask for it.
EXERCISE_CLASSES = {"my-tinyvit": "serve-model.TinyViTModel", "top5": "serve-model.TopFiveModel",
                    "scaled": "serve-model.TinyViTModel"}
# What the timm runtime reads of parameters.extra: RuntimeOptions (labkit/runtimes/base.py) and
# tinyvit/cpu_threads.py (tests/runtimes/test_base.py keeps the two in step; helper session 8:
# the list said "threads", which nothing reads, and refused "torch_threads", which is read).
TIMM_EXTRA = ("model", "top_k", "torch_threads", "parallel_workers")


def _check_timm_parameters(content: dict, folder: Path) -> None:
    """The timm runtime's own fields, named here rather than at the server's start (helper
    session 4: a missing uri, a top_k written as text and an unknown key passed when written)."""
    import difflib

    parameters = content.get("parameters") or {}
    extra = parameters.get("extra") if isinstance(parameters, dict) else None
    if not parameters.get("uri"):
        raise CheckFailed("parameters has no \"uri\": the timm runtime builds the architecture, and reads its "
                          "weights from the file uri names.",
                          f"Name the checkpoint's file, relative to {folder.name}/.")
    if not isinstance(extra, dict) or not extra.get("model"):
        raise CheckFailed("parameters.extra has no \"model\": the timm runtime does not know which architecture "
                          "to build.", "Give the timm model's name, as the exercise states it.")
    model = extra["model"]
    if isinstance(model, str) and (model.startswith(("hf_hub:", "hf-hub:")) or "/" in model):
        # timm.create_model would look it up on the Hugging Face hub and, offline, fail after
        # 30 s with "check your connection" (helper session 5: ✔ when written).
        raise CheckFailed(f"parameters.extra.model is {model!r}, a model on the Hugging Face hub: the runtime "
                          "would download it, and the lab runs offline with the weights the uri names.",
                          "Give the architecture's timm name, as the exercise states it; the weights come from "
                          "the uri.")
    _timm_model_fits_the_checkpoint(model)
    uri = parameters["uri"]
    if isinstance(uri, str) and (folder / uri).is_dir():
        # helper session 6: ✔ when written, then a bare FileNotFoundError at the start
        raise CheckFailed(f"parameters.uri is {uri!r}, a folder: the timm runtime reads its weights from one "
                          "checkpoint file.", f"Name the checkpoint's file, relative to {folder.name}/.")
    unknown = [key for key in extra if key not in TIMM_EXTRA]
    if unknown:
        near = difflib.get_close_matches(unknown[0], TIMM_EXTRA, n=1)
        raise CheckFailed(f"parameters.extra.{unknown[0]} is not a field the timm runtime reads; it ignores it"
                          + (f" (did you mean \"{near[0]}\"?)." if near else "."),
                          f"It reads {', '.join(TIMM_EXTRA)}.")
    k = extra.get("top_k")
    if k is not None and not _counts(k):
        raise CheckFailed(f"parameters.extra.top_k is {k!r}: the runtime takes a whole number of labels (1 or "
                          "more), and refuses anything else when it starts.",
                          "top_k is how many labels each row of the answer gets.")
    for key in ("torch_threads", "parallel_workers"):
        value = extra.get(key)
        if value is not None and not _counts(value):
            raise CheckFailed(f"parameters.extra.{key} is {value!r}: the runtime takes a whole number (1 or more) "
                              "and fails to load on anything else.", "It counts threads or processes: a count.")


def _timm_model_fits_the_checkpoint(model: object) -> None:
    """The timm name builds the checkpoint's network: TinyViT 5M, with ImageNet-22k's classes
    (helper session 6: another size, the 1,000-class version and a trailing space passed when
    written, and failed at the start with a state_dict mismatch)."""
    from labkit.model.weights import ARCHITECTURE

    if not isinstance(model, str):
        raise CheckFailed(f"parameters.extra.model is {model!r}: the timm runtime takes a model's name, as text.",
                          "Write the name in double quotes.")
    if model != model.strip():
        raise CheckFailed(f"parameters.extra.model is {model!r}: it has a space at one end, and timm knows no "
                          "such model.", "The name alone, nothing around it inside the quotes.")
    architecture, _, tag = model.partition(".")
    wanted, _, wanted_tag = ARCHITECTURE.partition(".")
    if (spelt := model.lower().replace("-", "_")) != model and spelt.startswith(wanted):  # sessions 13, 14
        raise CheckFailed(f"parameters.extra.model is {model!r}: timm spells its names in lower case with "
                          "underscores, and knows no model spelt so.", "The model's name as the exercise states it.")
    if architecture != wanted:
        raise CheckFailed(f"parameters.extra.model is {model!r}: {architecture!r} is another network than the one "
                          f"whose weights the uri names ({wanted}), so they would not fit it.",
                          "The architecture's name, as the exercise states it.")
    if tag and tag != wanted_tag:
        raise CheckFailed(f"parameters.extra.model is {model!r}: the '.{tag}' version of TinyViT has other classes "
                          "than the checkpoint the uri names (ImageNet-22k's 21,841), so its weights would not fit.",
                          "The model's name as the exercise states it, tag included, or the architecture alone.")


# Notebook 04's Hugging Face exercise: the stock module fails at import with the transformers
# that reads timm folders (labkit/runtimes/huggingface.py), HF_IMPLEMENTATION imports it after a fix.
HF_STOCK_IMPLEMENTATION = "mlserver_huggingface.HuggingFaceRuntime"
HF_TASK = "image-classification"
# The fields of mlserver_huggingface.settings.HuggingFaceSettings (MLServer 1.7.1).
HF_EXTRA = ("task", "task_suffix", "pretrained_model", "model_kwargs", "pretrained_tokenizer", "framework",
            "optimum_model", "device", "inter_op_threads", "intra_op_threads")


def hf_model_settings(folder: PathLike) -> None:
    """``model-settings.json`` for MLServer's Hugging Face runtime (notebook 04), read for
    meaning without running it (the runtime lives in the optional ``.venv-hf``, so the grade is
    the same with or without it): the folder's name, the runtime's class, the pipeline task,
    the PyTorch model of the folder itself (no hub id: offline; no path: transformers reads it
    from where MLServer runs, not from the folder), ``optimum_model`` off (a later cell turns it
    on)."""
    folder = Path(folder).resolve()
    if not (folder / "config.json").is_file():
        raise CheckFailed(f"{folder.name}/ holds no model (config.json) yet.",
                          "Run the cell that creates the folder first.")
    content = read_model_settings(folder)
    _check_name(content, folder)
    implementation = content["implementation"]
    if _stripped_by_mlserver(implementation):
        implementation = str(implementation).strip()
    if implementation == HF_STOCK_IMPLEMENTATION:
        raise CheckFailed(f"\"implementation\" is {implementation!r}, MLServer's own module: with the transformers "
                          "that reads a timm folder it fails at import (cannot import name 'Conversation').",
                          "The text above names the lab's module that imports the same class after a stand-in.")
    if implementation != HF_IMPLEMENTATION:
        raise CheckFailed(f"\"implementation\" is {implementation!r}, not the Hugging Face runtime.",
                          "Name the runtime's class as the text above does: the module MLServer imports, a dot, "
                          "the class.")
    parameters = content.get("parameters") or {}
    extra = parameters.get("extra")
    if not isinstance(extra, dict):
        raise CheckFailed("model-settings.json has no parameters.extra: the runtime reads its own options there.",
                          "parameters.extra is an object; the runtime needs at least the pipeline's task.")
    unknown = [key for key in extra if key not in HF_EXTRA]
    if unknown:  # the runtime's settings ignore unknown keys in silence (pydantic's Extra.ignore)
        import difflib

        near = difflib.get_close_matches(unknown[0], HF_EXTRA, n=1)
        raise CheckFailed(f"parameters.extra.{unknown[0]} is not a setting of the Hugging Face runtime, which "
                          "ignores it in silence" + (f" (did you mean \"{near[0]}\"?)." if near else "."),
                          "Its settings are those of mlserver_huggingface's HuggingFaceSettings.")
    task = extra.get("task")
    if isinstance(task, str) and task != task.strip() and task.strip() == HF_TASK:
        # helper session 15: a space at an end was told "lower case, words joined by hyphens"
        raise CheckFailed(f"parameters.extra.task is {task!r}, with a space at one end: transformers looks the "
                          "task up by its exact name, and knows none with a space.",
                          "Write the task's name without spaces around it.")
    if task != HF_TASK:
        raise CheckFailed(f"parameters.extra.task is {task!r}: the runtime builds a transformers pipeline for "
                          "that task, and TinyViT classifies images.",
                          "Task names are transformers' pipeline names: lower case, words joined by hyphens.")
    for where, value in (("parameters.extra.pretrained_model", extra.get("pretrained_model")),
                         ("parameters.uri", parameters.get("uri"))):
        if value is None or value == "":  # empty: the runtime falls back as when it is left out
            continue
        local = isinstance(value, str) and ((folder / value).exists() or Path(value).exists()
                                            or value.rstrip("/") == folder.name)
        # helper session 10: a Windows path and a ~ path were called hub models
        a_path = isinstance(value, str) and (value.startswith((".", "/", "~", "$", "file:"))
                                             or re.match(r"[A-Za-z]:", value) or "\\" in value)
        if isinstance(value, str) and not a_path and not local:
            raise CheckFailed(f"{where} is {value!r}, a model on the Hugging Face hub: the runtime would "
                              f"download it, and this lab has no internet. TinyViT is already in {folder.name}/.",
                              "Read again, above the exercise, where the runtime finds the model when the "
                              "settings name none.")
        absolute = isinstance(value, str) and (value.startswith(("/", "~", "$", "file:"))
                                               or re.match(r"[A-Za-z]:", value))
        how = ("an absolute path: it names a folder of one machine, which the copy that grading (or a container) "
               "serves is not" if absolute else
               f"a path the runtime passes to transformers as it is, read from where MLServer runs, not from "
               f"{folder.name}/. It breaks when the server starts elsewhere (when your notebook is graded, in a "
               "container)")
        raise CheckFailed(f"{where} is {value!r}, {how}.",
                          "Read again, above the exercise, where the runtime finds the model when the settings "
                          "name none.")
    device = extra.get("device")
    # The CPU as the pipeline takes it: -1, or a name torch reads as the CPU (helper session 8:
    # "cpu:0" was called a GPU, "CPU" too).
    on_cpu = device in (None, -1, "-1") or (isinstance(device, str) and re.fullmatch(r"cpu(:\d+)?", device))
    if not on_cpu:
        if isinstance(device, str) and device.strip().lower().startswith("cpu"):
            what = "not a name torch knows: it reads device names as written, in lower case"
        elif _names_a_gpu(device):
            what = "a GPU: this lab runs on the CPU, and the model would fail to load there"
        else:
            what = "not a device torch knows, and the model would fail to load"
        raise CheckFailed(f"parameters.extra.device is {device!r}, {what}.",
                          "Leave it out: the runtime's default is the CPU.")
    for key in ("inter_op_threads", "intra_op_threads"):
        value = extra.get(key)
        # helper session 8: "two" passed; HuggingFaceSettings reads these as whole numbers, the way
        # pydantic does ("2" and 2.0 are 2; "two", 2.5 and a list fail when the runtime loads)
        if value is not None and not _pydantic_whole(value):
            raise CheckFailed(f"parameters.extra.{key} is {value!r}: the runtime reads a whole number of threads "
                              "and fails to load on this.", "It counts threads: a count.")
    framework = extra.get("framework")
    if framework not in (None, "pt"):
        raise CheckFailed(f"parameters.extra.framework is {framework!r}; TinyViT's weights here are PyTorch's.",
                          "Leave it out, or name PyTorch the way transformers does.")
    optimum = extra.get("optimum_model", False)
    if _as_bool(optimum) is not False:
        raise CheckFailed(f"parameters.extra.optimum_model is {optimum!r}. This file serves the model with "
                          "PyTorch; the cells after the check run it with Optimum, so both can be compared.",
                          "JSON's booleans are lower case and unquoted." if isinstance(optimum, str) else
                          "Turn Optimum off here, or leave the field out (off is its default).")
    passed(f"model-settings.json: model {content['name']!r}, the Hugging Face runtime, task {task}, the model "
           f"in {folder.name}/ itself, with PyTorch")


def _check_own_class(module: str, class_name: str, folder: Path) -> None:
    """The exercises of 01, 03 and 05 serve the class of the folder's own file: not MLServer's
    base class, not a runtime installed elsewhere (notebook 04 configures those)."""
    first = module.split(".")[0]
    if module.startswith("."):
        raise CheckFailed(f"\"implementation\" is {module}.{class_name!s}, which starts with a dot: MLServer would "
                          "look for a module with no name.", "\"<file>.<Class>\": the file without .py, a dot, the "
                          "class.")
    if "." in module and (folder / f"{first}.py").is_file():
        raise CheckFailed(f"\"implementation\" is {module}.{class_name}: {first}.py is the file, and MLServer needs "
                          "the class in it, not a part of the class (a method, say).",
                          "\"<file>.<Class>\": two parts.")
    if module == "mlserver" and class_name == "MLModel":
        raise CheckFailed("\"implementation\" names mlserver.MLModel, MLServer's base class: it has no load() "
                          "or predict() of its own to serve.",
                          f"Name the class that the service file of {folder.name}/ defines.")
    if class_name == "MLModel" and "." not in module:
        # helper session 10: "serve-model.MLModel" passed, because the file imports MLModel; MLServer
        # then served the base class, and every service check blamed serve-model.py.
        raise CheckFailed(f"\"implementation\" names {module}.MLModel: that is MLServer's base class, which "
                          f"{module}.py imports, not a class of its own. MLServer would serve it with none of your "
                          "code, and answer every request with an error.",
                          f"Name the class that the service file of {folder.name}/ defines.")
    if "." in module and first == folder.name:
        # helper session 8: "top5.serve-model.TopFiveModel" was called a class of an installed package
        raise CheckFailed(f"\"implementation\" is {module}.{class_name}: it starts with the folder's name, "
                          f"{folder.name}. MLServer imports from inside the model's folder, where no module "
                          f"{folder.name} exists.", "Leave out the folder: \"<file>.<Class>\".")
    if "." in module:
        raise CheckFailed(f"\"implementation\" names {module}.{class_name}, a class from an installed package, "
                          f"not from a file of {folder.name}/: this exercise serves the class you write there.",
                          "Name the file (without .py) and the class in it.")


def _check_name(content: dict, folder: Path) -> None:
    if content["name"] != folder.name:
        raise CheckFailed(f"model-settings.json names the model {content['name']!r}; this exercise's model is "
                          f"called {folder.name!r}, like its folder, and the cells below address it by that name.",
                          "Clients put the model's name in the URL (/v2/models/<name>/infer); use the name the "
                          "exercise gives.")


def _check_batching_on(content: dict, size_asked: int, wait_asked: float) -> None:
    size, wait = content.get("max_batch_size"), content.get("max_batch_time")
    extra = (content.get("parameters") or {}).get("extra") if isinstance(content.get("parameters"), dict) else None
    nested = [key for key in BATCHING_KEYS if isinstance(extra, dict) and key in extra]
    if nested and (size is None or wait is None):
        raise CheckFailed(f"model-settings.json sets {nested} under parameters.extra, the options MLServer hands to "
                          "the service's own code: MLServer itself reads adaptive batching at the top level of "
                          "the file, and finds none, so batching stays off.",
                          "Batching is MLServer's, not the service's: read where the text puts it.")
    if size is None or wait is None:
        missing = [key for key in BATCHING_KEYS if key not in content]
        raise CheckFailed(f"model-settings.json does not set {missing}: adaptive batching stays off.",
                          "Adaptive batching takes both fields, in this file.")
    if not (size > 1 and wait > 0):
        raise CheckFailed(f"max_batch_size {size} and max_batch_time {wait}: MLServer batches only when the "
                          "size is above 1 and the time above 0, so batching stays off.",
                          "Read the exercise again for the batch size and the wait it asks for.")
    if size != size_asked or abs(wait - wait_asked) > 1e-9:
        raise CheckFailed(f"Batching is on, with max_batch_size {size} and max_batch_time {wait:g} s; the exercise "
                          "asks for other values.", "Read the exercise again: how many images, how long a wait "
                          "(MLServer reads seconds).")


def read_model_settings(folder: Path) -> dict:
    """The checked content of ``model-settings.json``."""
    content = read_json(folder / "model-settings.json")
    name = content.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CheckFailed("model-settings.json has no \"name\".",
                          "The name is how clients address the model: /v2/models/<name>/infer.")
    implementation = content.get("implementation")
    if not isinstance(implementation, str) or "." not in implementation:
        raise CheckFailed(f"\"implementation\" is {implementation!r}; MLServer needs \"<python file>.<class>\".",
                          "The file name without .py, a dot, then the class name defined in it.")
    module, _, class_name = implementation.rpartition(".")
    if module.endswith(".py") or "/" in module or class_name == "py":
        raise CheckFailed(f"\"implementation\" is {implementation!r}: MLServer imports a module name, "
                          "not a file path.",
                          "Leave out the folder and the .py extension: \"<file>.<Class>\".")
    misplaced = [key for key in content if key in SERVER_ONLY_KEYS or key == "parallel_workers"]
    if misplaced:
        raise CheckFailed(f"model-settings.json sets {misplaced}, which are settings of the whole server.",
                          "Put them in settings.json; model-settings.json describes one model.")
    _check_batching_values(content)
    _check_as_mlserver_reads(content, "model-settings")
    parameters = content.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise CheckFailed(f"\"parameters\" is {parameters!r}; MLServer expects an object of named fields.",
                          "Write it as { \"uri\": ..., \"extra\": {...} }, or leave it out.")
    uri = parameters.get("uri")
    if uri is not None and not isinstance(uri, str):
        raise CheckFailed(f"parameters.uri is {uri!r}; it is a path, a string.", "Write the path in double quotes.")
    if uri and os.path.isabs(uri):
        # Even a path to the folder's own file: it names this folder where it is now, and the
        # copy that grading (or the image of notebook 06) serves is elsewhere.
        raise CheckFailed(f"parameters.uri is {uri!r}, an absolute path. It works where your notebook is, and "
                          "breaks where the folder is copied: when your notebook is graded, and in the image of "
                          "notebook 06.", f"Name the file relative to {folder.name}/, the folder of "
                          "model-settings.json.")
    inside = os.path.normpath(folder / uri) if uri else ""  # no symlinks followed: the link is the lab's
    if uri and not inside.startswith(os.path.normpath(folder) + os.sep) and inside != os.path.normpath(folder):
        raise CheckFailed(f"parameters.uri is {uri!r}, which points outside {folder.name}/. It works where your "
                          "notebook is, and breaks where the folder is copied: when your notebook is graded, "
                          "and in the image of notebook 06.",
                          f"Name a file inside {folder.name}/ (the lab put the checkpoint there), relative to it.")
    if uri and not (folder / uri).exists():
        raise CheckFailed(f"parameters.uri is {uri!r}, which does not exist (relative to {folder.name}/).",
                          "The lab put the checkpoint into the folder: list it to see the file's name."
                          if (folder / "tinyvit.safetensors").exists() else
                          f"MLServer reads a uri relative to the folder of model-settings.json, {folder.name}/.")
    return content


def _check_as_mlserver_reads(content: dict, kind: mlserver_settings.Kind) -> None:
    """What MLServer's own settings model refuses, and every key it would ignore in silence."""
    refused_values = mlserver_settings.refused(content, kind)
    problems = refused_values + mlserver_settings.ignored_keys(content, kind)
    if not problems:
        return
    name = mlserver_settings.FILES[kind]
    more = f" (and {len(problems) - 1} more: each is named once this one is fixed)" if len(problems) > 1 else ""
    refused = bool(refused_values)
    raise CheckFailed(f"{name}: {problems[0]}{more}",
                      (f"MLServer would refuse {name} and serve no model. " if refused and kind == "model-settings"
                       else f"MLServer would refuse {name} and not start. " if refused else
                       "MLServer says nothing about a key it does not know: your setting would have no effect. ")
                      + "Compare each key with the settings the notebook's text names.")


def _check_batching_values(content: dict) -> None:
    """max_batch_size a whole number, max_batch_time a number of seconds a lone request can
    afford to wait (MLServer accepts any number and says nothing)."""
    size, wait = content.get("max_batch_size"), content.get("max_batch_time")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise CheckFailed(f"max_batch_size is {size!r}; it is a whole number of requests (0 or 1: no batching).",
                          "It counts requests merged into one predict() call.")
    if wait is None:
        return
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait < 0:
        raise CheckFailed(f"max_batch_time is {wait!r}; it is a number of seconds (0 or more).",
                          "It is how long MLServer holds the first request of a batch for others to join.")
    if wait == float("inf"):
        raise CheckFailed("max_batch_time is Infinity: a request that arrives alone would wait for company forever.",
                          "It is how long MLServer holds the first request of a batch, in seconds.")
    if wait > LONGEST_BATCH_WAIT_SECONDS:
        raise CheckFailed(f"max_batch_time is {wait:g}. MLServer reads it in seconds: a request that arrives "
                          f"alone would wait {wait:g} s for company before the model sees it. Under a steady "
                          "load the batches fill up first, so this would seem to work. Did you mean "
                          "milliseconds?",
                          "Write the wait in seconds; a millisecond is 0.001.")


def _is_host(host: str) -> bool:
    """An address both of MLServer's servers can bind: a host name or a full IPv4 address (no
    scheme, port, path or space). Not IPv6: MLServer gives gRPC "<host>:<port>", which gRPC
    refuses for "::1"; not a short IPv4 form such as "127.1", which gRPC refuses too."""
    if re.fullmatch(r"[0-9.]+", host):
        # four numbers of 0 to 255 (helper session 8: 127.0.0.256 was called an interface)
        return bool(re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", host)) and all(int(part) <= 255 for part in host.split("."))
    return bool(re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", host))


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8 or localhost: this machine only."""
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def _as_bool(value: object) -> object:
    """``value`` as pydantic settings read a boolean (0, "false", "off" are False), or
    ``value`` itself when it is none."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return value


PORT_NAMES = {"http_port": "the REST API", "grpc_port": "gRPC", "metrics_port": "the metrics"}


def _ports_mlserver_can_take(as_read: object) -> None:
    """The three ports, as MLServer reads them (defaults 8080-8082 where the file sets none):
    one each, none below 1024 (helper session 6: both were ticked; `mlserver start` stops on
    them), none 0 (any free port, unknown to the client)."""
    read = {name: getattr(as_read, name, None) for name in PORT_NAMES}
    ports = {name: port for name, port in read.items() if isinstance(port, int)}
    for name, port in ports.items():
        if port > 65535 or port < 0:
            raise CheckFailed(f"settings.json puts {PORT_NAMES[name]} on port {port}: a port is a number from 0 to "
                              "65535, and MLServer would fail to start.", "Pick a number in that range, above 1023.")
        if port == 0:
            # helper session 7: ticked; the server starts on a port nobody can know beforehand
            raise CheckFailed(f"settings.json puts {PORT_NAMES[name]} on port 0: the system then gives it any free "
                              "port, another at each start, and no client knows where to send its requests.",
                              "Leave the ports out (MLServer's defaults), or pick numbers above 1023.")
        if 0 < port < 1024:
            raise CheckFailed(f"settings.json puts {PORT_NAMES[name]} on port {port}: ports below 1024 are reserved "
                              "for the system, and MLServer, run as you, would fail to start.",
                              "Leave the ports out (MLServer's defaults), or pick numbers above 1023.")
    for name, port in ports.items():
        shared = [other for other, value in ports.items() if other != name and value == port and port]
        if shared:
            raise CheckFailed(f"settings.json puts {PORT_NAMES[name]} and {PORT_NAMES[shared[0]]} on one port, {port} "
                              f"(counting MLServer's defaults, 8080, 8081 and 8082, for the ports the file leaves "
                              "out): MLServer would open two servers on it, and the second fails to start.",
                              "One port each.")


def server_settings(folder: PathLike, expected_workers: int | None = None, debug_off: bool = False) -> None:
    """``settings.json``: how the server runs (with ``expected_workers``, the worker count
    the exercise asks for).

    Args:
        folder: the service folder whose ``settings.json`` is read.
        expected_workers: the ``parallel_workers`` the exercise asks for (None: any count
            MLServer takes, with 0 or the default 1 named as such).
        debug_off: also require ``"debug": false`` stated.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    content = read_json(Path(folder) / "settings.json")
    misplaced = [key for key in BATCHING_KEYS if key in content]
    if misplaced:
        raise CheckFailed(f"settings.json sets {misplaced}. MLServer reads adaptive batching per model, from "
                          "model-settings.json: in settings.json these keys are ignored, silently, and "
                          "nothing would change.",
                          "Move them to model-settings.json (the course text puts them in the wrong file).")
    workers = content.get("parallel_workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise CheckFailed(f"parallel_workers is {workers!r}; it is a whole number of processes (0 or more).",
                          "It counts inference worker processes.")
    _check_as_mlserver_reads(content, "settings")
    as_read = mlserver_settings.read(content, "settings")
    if as_read.load_models_at_startup is False:
        raise CheckFailed("settings.json has load_models_at_startup false: MLServer would start without loading "
                          "the model, and answer no request for it.",
                          "Leave out the settings the exercise does not ask for.")
    host = content.get("host")
    if isinstance(host, str) and not _is_host(host):
        raise CheckFailed(f"settings.json has host {host!r}, which is not an address MLServer can listen on: it "
                          "would fail to start.",
                          "host is an IPv4 address (four numbers) or a host name alone: no scheme, no port, no "
                          "spaces.")
    if isinstance(host, str) and re.fullmatch(r"[0-9.]+", host) and re.search(r"(^|\.)0\d", host):
        # helper session 15: 127.000.000.001 was called reachable from other machines
        raise CheckFailed(f"settings.json has host {host!r}, with leading zeros: programs read such an address "
                          "differently (some refuse it, some read 010 as the octal 8).",
                          "Write each of the four numbers without leading zeros.")
    if not (isinstance(host, str) and _is_loopback(host)):
        where = ("MLServer listens on 0.0.0.0: every network interface" if content.get("host") in (None, "0.0.0.0")
                 else "MLServer listens on a network interface")
        raise CheckFailed(f"settings.json has host {content.get('host', '(not set)')!r}: {where}, reachable from "
                          "other machines.",
                          "Bind the server to this machine's loopback address only while you develop.")
    _ports_mlserver_can_take(as_read)
    if not as_read.metrics_endpoint:
        # helper session 8: passed, then 05's measurement failed with a bare ConnectionError
        raise CheckFailed(f"settings.json sets metrics_endpoint {content.get('metrics_endpoint')!r}: MLServer then "
                          "serves no metrics, and the lab reads the server's own counters there (the batch sizes "
                          "of notebook 05, the monitoring of notebook 07, the checks' count of your requests).",
                          "Leave out the settings the exercise does not ask for.")
    # helper sessions 10 and 11: a file that does not exist, a folder, or a file that is no logging
    # set-up passed, then `mlserver start` stopped
    problem = (mlserver_settings.logging_problem(content["logging_settings"], Path(folder).resolve().parent)
               if content.get("logging_settings") is not None else None)
    if problem:
        raise CheckFailed(f"settings.json's logging_settings {content['logging_settings']!r} {problem}: MLServer "
                          "would stop at its start.", "Leave out the settings the exercise does not ask for.")
    if expected_workers is not None and workers != expected_workers:
        runs = (f"runs {workers} parallel worker(s)" if "parallel_workers" in content else
                "sets no parallel_workers, so MLServer runs its default, 1 worker")
        raise CheckFailed(f"settings.json {runs}; the exercise asks for {expected_workers}.",
                          "parallel_workers counts the worker processes that each load the model; with 0 "
                          "there is none and MLServer's own process runs it.")
    if debug_off and as_read.debug is not False:  # "false" reads as false
        shown = content.get("debug", "(not set: MLServer 1.7 defaults to true)")
        raise CheckFailed(f"settings.json has debug {shown!r}; the exercise turns debug mode off.",
                          "JSON's booleans are lower case and unquoted." if isinstance(shown, str) and
                          "not set" not in shown else "MLServer 1.7 runs in debug mode unless the file turns it off.")
    passed(f"settings.json: host {content['host']}, {workers} parallel worker(s)")
