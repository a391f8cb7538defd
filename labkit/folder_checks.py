"""Checks on the files of a student's service folder, with feedback in the student's terms.

* :func:`model_settings` and :func:`server_settings` read the two JSON files the way
  MLServer will, and name what is wrong: invalid JSON (a trailing comma), a missing
  field, an ``implementation`` that is not ``<file>.<Class>``, settings in the wrong file
  (adaptive batching belongs in ``model-settings.json``, where MLServer reads it; in
  ``settings.json`` it is silently ignored), a missing ``host: 127.0.0.1``.
* :func:`service` imports the folder's implementation as MLServer does, runs its
  ``load()`` and ``predict()`` in this process on an image, and compares the answer with
  the lab's in-process TinyViT (a smoke call: seconds, no server).
* :func:`watch` runs the right one of them right after a ``%%writefile`` cell writes a
  file into the folder, so the cell that writes a file says at once whether it works.

Every check raises :class:`labkit.checks.CheckFailed` (an ``AssertionError``: nbgrader
counts it) or prints one line per passed step.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Coroutine

from .checks import CheckFailed, passed
from .paths import CAT, DEFAULT_CHECKPOINT, PathLike
from .service import quiet_mlserver_logs, run_coroutine
if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult
    from mlserver import MLModel

BATCHING_KEYS = ("max_batch_size", "max_batch_time")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")  # this machine only
SERVER_ONLY_KEYS = ("host", "http_port", "grpc_port", "metrics_port", "debug", "gzip_enabled")


def read_json(path: Path) -> dict:
    """The JSON object in ``path``, or CheckFailed that points at the mistake."""
    if not path.is_file():
        raise CheckFailed(f"{path.parent.name}/{path.name} does not exist yet.",
                          f"Write it with a cell that starts with %%writefile {path.parent.name}/{path.name}")
    text = path.read_text()
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        trailing = re.search(r",\s*[}\]]", text)
        if trailing:
            line = text[:trailing.start()].count("\n") + 1
            raise CheckFailed(f"{path.name} is not valid JSON: a trailing comma on line {line}, before a "
                              "closing bracket.",
                              "JSON, unlike Python, allows no comma after the last item (the course text's "
                              "example has one). MLServer would refuse to start.") from None
        raise CheckFailed(f"{path.name} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
                          "Keys and strings take double quotes; true/false/null are lower case; "
                          "no comments.") from None
    if not isinstance(content, dict):
        raise CheckFailed(f"{path.name} holds a JSON {type(content).__name__}, not an object.",
                          "Write one object: { \"key\": value, ... }.")
    return content


def model_settings(folder: PathLike) -> None:
    """``model-settings.json``: which model, which class, per-model knobs."""
    content = read_model_settings(Path(folder))
    module, _, class_name = content["implementation"].rpartition(".")
    passed(f"model-settings.json: model {content['name']!r}, class {class_name} from {module}.py")


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
    uri = (content.get("parameters") or {}).get("uri")
    if uri and not (folder / uri).exists():
        raise CheckFailed(f"parameters.uri is {uri!r}, which does not exist (relative to {folder.name}/).",
                          "Leave parameters.uri out: the lab put the checkpoint into the folder, where "
                          "MLServer's default uri (the folder) finds it.")
    return content


def server_settings(folder: PathLike) -> None:
    """``settings.json``: how the server runs."""
    content = read_json(Path(folder) / "settings.json")
    misplaced = [key for key in BATCHING_KEYS if key in content]
    if misplaced:
        raise CheckFailed(f"settings.json sets {misplaced}. MLServer reads adaptive batching per model, from "
                          "model-settings.json: in settings.json these keys are ignored, silently, and "
                          "nothing would change.",
                          "Move them to model-settings.json (the course text puts them in the wrong file).")
    if content.get("host") not in LOOPBACK_HOSTS:
        raise CheckFailed(f"settings.json has host {content.get('host', '(not set)')!r}. Without "
                          "\"host\": \"127.0.0.1\" MLServer listens on 0.0.0.0: every network interface, "
                          "reachable from other machines.",
                          "Bind the server to this machine only while you develop: \"host\": \"127.0.0.1\".")
    workers = content.get("parallel_workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise CheckFailed(f"parallel_workers is {workers!r}; it is a whole number of processes (0 or more).",
                          "1 is a good start: one inference worker process.")
    passed(f"settings.json: host {content['host']}, {workers} parallel worker(s)")


def service(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT) -> None:
    """Notebook 01: the course text's single-image service answers one ``[H, W, 3]`` image
    (NumpyCodec, no batch axis) with the model's probabilities."""
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest

    from .client import load_image
    from .reference import in_process_model

    model = load_service(folder)
    image = load_image(CAT)
    request = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", image)])
    response = call(model.predict(request), "predict()")
    if not response.outputs:
        raise CheckFailed("predict() returned an answer with no outputs.",
                          "Return the probabilities array; @decode_args turns it into an output.")
    probabilities = NumpyCodec.decode_output(response.outputs[0])
    expected = in_process_model(checkpoint).probabilities([image])
    if probabilities.size != expected.size:
        raise CheckFailed(f"predict() returned {probabilities.size} values of shape {list(probabilities.shape)} "
                          f"for one image; TinyViT has {expected.shape[1]} classes.",
                          "Return the network's output for the image: one row of class probabilities.")
    if not np.allclose(probabilities.reshape(expected.shape).sum(axis=1), 1, atol=1e-3):
        raise CheckFailed("The values predict() returned do not sum to 1: they are logits, not probabilities.",
                          "Apply softmax over the classes (dim=-1).")
    if not np.allclose(probabilities.reshape(expected.shape), expected, rtol=1e-3, atol=1e-6):
        raise CheckFailed("predict() returned probabilities that differ from TinyViT's for the same image.",
                          "Preprocess with the transform from load() (timm's resolve_data_config / "
                          "create_transform) and run the model in eval mode.")
    passed("serve-model.py imports, load() builds TinyViT, predict() answers like the model")


def load_service(folder: PathLike) -> MLModel:
    """Import the folder's implementation as MLServer does and run ``load()``; the model."""
    from mlserver import MLModel
    from mlserver.repository.load import load_model_settings

    folder = Path(folder).resolve()
    content = read_model_settings(folder)
    module_name, _, class_name = content["implementation"].rpartition(".")
    module_file = folder / f"{module_name}.py"
    if not module_file.is_file():
        files = sorted(path.name for path in folder.glob("*.py"))
        raise CheckFailed(f"\"implementation\" names {module_name}.py, but {folder.name}/ has {files}.",
                          "Spell the file name exactly as on disk, without .py (a hyphen is fine).")
    module = import_fresh(module_file)
    cls = getattr(module, class_name, None)
    if cls is None:
        classes = [name for name, value in vars(module).items() if isinstance(value, type)
                   and value.__module__ == module.__name__]
        raise CheckFailed(f"{module_file.name} defines no class {class_name} (it defines {classes}).",
                          "The class name in \"implementation\" must match the class in the file, "
                          "upper and lower case included.")
    if not (isinstance(cls, type) and issubclass(cls, MLModel)):
        raise CheckFailed(f"{class_name} is not a subclass of mlserver.MLModel.",
                          "class TinyViTModel(MLModel): ... (from mlserver import MLModel)")
    with quiet_mlserver_logs():
        model = cls(load_model_settings(str(folder / "model-settings.json")))
        loaded = call(model.load(), "load()")
    if loaded is not True:
        # MLServer sets model.ready = await model.load(): anything but True never gets ready.
        raise CheckFailed(f"load() returned {loaded!r}, so MLServer would never mark the model as ready "
                          "(the server would start and wait forever for it).",
                          "End load() with return True.")
    if not hasattr(model, "model"):
        raise CheckFailed("load() did not keep the network: self.model is not set.",
                          "self.model = await load_tinyvit(self.settings)")
    return model


def import_fresh(module_file: Path) -> ModuleType:
    """Import ``module_file`` under a new name each time (it may have changed), with its
    folder on ``sys.path`` as MLServer has it, for the helper modules next to it."""
    folder = str(module_file.parent)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(f"student_{uuid.uuid4().hex}", module_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise CheckFailed(f"{module_file.name} line {error.lineno}: {error.msg}.",
                          "Fix the syntax error, then run the cell that writes the file again.") from None
    except Exception as error:
        raise CheckFailed(f"Importing {module_file.name} failed: {type(error).__name__}: {error}",
                          "MLServer imports the file the same way; check the import lines.") from None
    finally:
        sys.path.remove(folder)
    return module


def call(coroutine: Coroutine, what: str) -> object:
    """Run one of the student's coroutines; an exception becomes feedback."""
    try:
        return run_coroutine(coroutine)
    except CheckFailed:
        raise
    except NotImplementedError:
        raise CheckFailed(f"{what} is not written yet (it raises NotImplementedError).",
                          "Replace the placeholder lines with your code.") from None
    except Exception as error:
        raise CheckFailed(f"{what} raised {type(error).__name__}: {error}",
                          "MLServer would answer this request with an error; fix the code and "
                          "write the file again.") from None


# What the service imports (its distribution names), and the pin MLServer 1.7.1 itself needs:
# with uvloop 0.22 every parallel worker crash-loops.
SERVICE_DISTRIBUTIONS = ("mlserver", "torch", "timm", "numpy", "pillow", "safetensors")
CONDA_LINE = re.compile(r"^[A-Za-z0-9_.-]+=[^=\s]+=\S+$")  # name=version=build, `conda list -e`


def requirements(folder: PathLike) -> None:
    """Notebook 06: ``requirements.txt`` for ``mlserver build``: pip's format, every package
    the service imports pinned to the version this lab runs (so it resolves, and the image
    runs what was tested), and uvloop below 0.22."""
    from importlib.metadata import version

    from packaging.requirements import InvalidRequirement, Requirement

    path = Path(folder) / "requirements.txt"
    if not path.is_file():
        raise CheckFailed(f"{path.parent.name}/requirements.txt does not exist yet.",
                          f"Write it with a cell that starts with %%writefile {path.parent.name}/requirements.txt")
    pins = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if CONDA_LINE.match(line):
            raise CheckFailed(f"Line {number}, {line!r}, is conda's format (name=version=build, what `conda list "
                              "-e` writes); pip, which `mlserver build` runs, cannot read it.",
                              "One package per line in pip's format: name==version.")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise CheckFailed(f"Line {number}, {line!r}, is not a pip requirement ({error}).",
                              "One package per line in pip's format: name==version.") from None
        pins[requirement.name.lower().replace("_", "-")] = requirement
    missing = [name for name in SERVICE_DISTRIBUTIONS if name not in pins]
    if missing:
        raise CheckFailed(f"requirements.txt does not list {missing}, which serve-model.py and its helpers "
                          "import: the image would not have them.",
                          "List every package the service imports (by its pip name: PIL is pillow).")
    for name in SERVICE_DISTRIBUTIONS:
        specifiers = list(pins[name].specifier)
        installed = version(name)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise CheckFailed(f"{name} is not pinned ({pins[name]}): next month's build would install "
                              "whatever is newest then, not what you tested.",
                              f"Pin the version this lab runs: {name}=={installed}.")
        if specifiers[0].version != installed:
            raise CheckFailed(f"{pins[name]} is not the version this lab runs and you tested ({installed}).",
                              "Pin the versions of the environment you tested in (pip show <name>).")
    uvloop = pins.get("uvloop")
    if uvloop is None or uvloop.specifier.contains("0.22.0"):
        raise CheckFailed("uvloop is not kept below 0.22: MLServer 1.7.1 allows any uvloop, and with 0.22 every "
                          "parallel worker crash-loops.",
                          f"Pin it as this lab does: uvloop=={version('uvloop')}.")
    passed(f"requirements.txt: {len(pins)} packages in pip's format, pinned to the tested versions")


def image_folder(context: PathLike) -> None:
    """Notebook 06: a build folder that ``mlserver dockerfile`` has run on, and that carries
    everything the image needs: the weights as a file, the service, its requirements."""
    context = Path(context)
    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file():
        raise CheckFailed(f"{context.name}/ has no Dockerfile.",
                          f"Run `mlserver dockerfile {context}` (the cell above).")
    text = dockerfile.read_text()
    if "seldonio/mlserver:1.7.1" not in text or "requirements.tx" not in text:
        raise CheckFailed("The Dockerfile is not the one MLServer 1.7.1 writes (its base image and "
                          "requirements step are missing).", f"Run `mlserver dockerfile {context}` again.")
    requirements(context)
    uri = (read_json(context / "model-settings.json").get("parameters") or {}).get("uri", ".")
    weights = (context / uri).resolve()
    if not weights.is_file() or (context / uri).is_symlink() or context.resolve() not in weights.parents:
        raise CheckFailed(f"The model's uri {uri!r} is not a weights file inside the build folder: the image "
                          "would have no weights.", "Build from the folder labkit.packaging.build_context made.")
    passed("the build folder has MLServer's Dockerfile, the pinned requirements and the weights")


CHECKS_BY_FILE = {"model-settings.json": model_settings, "settings.json": server_settings,
                  "requirements.txt": requirements}


def watch(folder: PathLike, service_check: Callable[[Path], None] = service) -> None:
    """After each cell that ``%%writefile``-s a file into ``folder``, check that file.
    ``service_check`` checks ``.py`` files (the exercise's own smoke call)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    folder = Path(folder).resolve()

    def after_cell(result: ExecutionResult) -> None:
        match = re.match(r"\s*%%writefile\s+(?:-a\s+)?(\S+)", result.info.raw_cell or "")
        if not match or result.error_in_exec is not None:
            return
        path = Path(match.group(1)).resolve()
        if path.parent != folder:
            return
        check = CHECKS_BY_FILE.get(path.name) or (service_check if path.suffix == ".py" else None)
        if check is None:
            return
        try:
            check(folder)
        except CheckFailed as failure:
            print(f"✘ {failure}")

    after_cell.lab_watch = str(folder)
    for callback in list(shell.events.callbacks["post_run_cell"]):
        if getattr(callback, "lab_watch", None) == str(folder):
            shell.events.unregister("post_run_cell", callback)
    shell.events.register("post_run_cell", after_cell)


def top5_file(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT) -> None:
    """Notebook 03: the top-5 service answers a batch of two different images in this
    process: ``labels`` and ``scores`` ``[2, 5]``, each row that image's own top 5."""
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest

    from .checks import check_images, distinct_reference
    from .reference import in_process_model

    model = load_service(folder)
    images = [np.asarray(image[:160, :200]) for _, image in check_images()[1:3]]
    distinct_reference(images, checkpoint)
    request = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", np.stack(images))])
    response = call(model.predict(request), "predict()")
    outputs = {output.name: output for output in response.outputs}
    if set(outputs) != {"labels", "scores"}:
        raise CheckFailed(f"predict() returned outputs {sorted(outputs)}; expected 'labels' and 'scores'.",
                          "Return two outputs: NumpyCodec.encode_output('labels', ...) and ('scores', ...).")
    labels = np.asarray(NumpyCodec.decode_output(outputs["labels"]), dtype=object)
    labels = np.vectorize(lambda label: label.decode() if isinstance(label, bytes) else label,
                          otypes=[object])(labels)
    scores = NumpyCodec.decode_output(outputs["scores"])
    if labels.shape != (2, 5) or scores.shape != (2, 5):
        raise CheckFailed(f"For 2 images predict() returned labels {list(labels.shape)} and scores "
                          f"{list(scores.shape)}; expected [2, 5] for both.",
                          "One row per image of the batch: take the top 5 along axis 1.")
    expected_labels, expected_scores = in_process_model(checkpoint).top_k(images)
    for row in range(2):
        if set(labels[row]) != set(expected_labels[row]):
            raise CheckFailed(f"Row {row} holds labels that are not image {row}'s top 5.",
                              "Compute the top 5 of each row of the probabilities, not of the whole array "
                              "or of the first row only.")
    passed("serve-model.py answers a batch of 2 different images with each image's own top 5")
