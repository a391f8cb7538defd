"""Checks on the files of a student's service folder, with feedback in the student's terms.

* :func:`model_settings` and :func:`server_settings` read the two JSON files the way
  MLServer will, and name what is wrong: invalid JSON (a trailing comma), a missing
  field, an ``implementation`` that is not ``<file>.<Class>``, settings in the wrong file
  (adaptive batching belongs in ``model-settings.json``, where MLServer reads it; in
  ``settings.json`` it is silently ignored), a missing ``host: 127.0.0.1``.
* :func:`service` imports the folder's implementation as MLServer does, runs its
  ``load()`` and ``predict()`` in this process on an image, and compares the answer with
  the lab's in-process TinyViT (a smoke call: seconds, no server).
* :func:`check_each_write` runs the right one of them right after a ``%%writefile`` cell writes a
  file into the folder, so the cell that writes a file says at once whether it works.

Every check raises :class:`labkit.checks.CheckFailed` (an ``AssertionError``: nbgrader
counts it) or prints one line per passed step.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import re
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Coroutine, Iterator

from labkit.checks.common import CheckFailed, compare_top_k, distinct_images, passed
from labkit.client import decode_output
from labkit.contract import CONFIDENCE_METRIC, INPUT_NAME
from labkit.paths import DEFAULT_CHECKPOINT, PathLike
from labkit.model.service import quiet_mlserver_logs, run_coroutine
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
    if not text.strip():
        raise CheckFailed(f"{path.parent.name}/{path.name} is empty.",
                          "Write the JSON object on the lines under the %%writefile line, then run the cell.")
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


# A lone request waits up to max_batch_time for company: more than this is a unit mistake
# (milliseconds written as seconds), which "works" under load, where batches fill up at once.
LONGEST_BATCH_WAIT_SECONDS = 1.0


def model_settings(folder: PathLike, batching: tuple[int, float] | None = None, require_code: bool = True) -> None:
    """``model-settings.json``: which model, which class, per-model knobs. The model's name is
    the folder's (what the exercise asks for, and what MLServer expects: it warns when they
    differ); ``implementation`` must resolve to a subclass of ``MLModel``, the way MLServer
    imports it (unless ``require_code`` is false and the file is not written yet);
    ``batching`` is the ``(max_batch_size, max_batch_time)`` the exercise asks for."""
    folder = Path(folder).resolve()
    content = read_model_settings(folder)
    if content["name"] != folder.name:
        raise CheckFailed(f"model-settings.json names the model {content['name']!r}; this exercise's model is "
                          f"called {folder.name!r}, like its folder, and the cells below address it by that name.",
                          "Clients put the model's name in the URL (/v2/models/<name>/infer); use the name the "
                          "exercise gives.")
    if batching:
        _check_batching_on(content, *batching)
    module, _, class_name = content["implementation"].rpartition(".")
    if not require_code and "." not in module and not (folder / f"{module}.py").is_file():
        passed(f"model-settings.json: model {content['name']!r}; class {class_name} is checked once "
               f"{module}.py exists")
        return
    resolve_implementation(folder, content["implementation"])
    passed(f"model-settings.json: model {content['name']!r}, class {class_name} from {module}, a subclass "
           "of MLModel")


def _check_batching_on(content: dict, size_asked: int, wait_asked: float) -> None:
    size, wait = content.get("max_batch_size"), content.get("max_batch_time")
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


def resolve_implementation(folder: Path, implementation: str) -> type | None:
    """The class ``implementation`` names, imported as MLServer does (the folder first on
    ``sys.path``), after checking it subclasses ``MLModel``; CheckFailed names what is wrong.
    None when the file does not import but defines a class of that name."""
    module_name, _, class_name = implementation.rpartition(".")
    module_file = folder / f"{module_name}.py"
    if module_file.is_file():
        try:
            module = import_fresh(module_file)
        except CheckFailed:
            # The file does not import: its own check says why. The settings are right if they
            # name a class the file defines (one mistake, one exercise).
            if re.search(rf"^class\s+{re.escape(class_name)}\s*[(:]", module_file.read_text(), re.M):
                return None
            raise CheckFailed(f"{module_file.name} defines no class {class_name} (and does not import yet).",
                              "The class name in \"implementation\" must match the class in the file, "
                              "upper and lower case included.") from None
    else:
        try:
            if "." not in module_name:  # a file of the folder, not written yet (sys.modules may hold another)
                raise ImportError(module_name)
            module = importlib.import_module(module_name)  # an installed runtime, e.g. labkit.runtimes.timm
        except ImportError:
            files = sorted(path.name for path in folder.glob("*.py"))
            raise CheckFailed(f"\"implementation\" names {module_name}.py, but {folder.name}/ has {files}.",
                              "Spell the file name exactly as on disk, without .py (a hyphen is fine).") from None
    return model_class(module, module_name, class_name)


def model_class(module: ModuleType, module_name: str, class_name: str) -> type:
    """``module.<class_name>``, checked to be a subclass of ``MLModel``."""
    from mlserver import MLModel

    cls = getattr(module, class_name, None)
    if cls is None:
        classes = [name for name, value in vars(module).items() if isinstance(value, type)
                   and value.__module__ == module.__name__]
        raise CheckFailed(f"{module_name} defines no class {class_name} (it defines {classes}).",
                          "The class name in \"implementation\" must match the class in the file, "
                          "upper and lower case included.")
    if not (isinstance(cls, type) and issubclass(cls, MLModel)):
        raise CheckFailed(f"{class_name} is not a subclass of mlserver.MLModel: MLServer cannot serve it.",
                          "MLServer serves classes derived from its MLModel.")
    return cls


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
    parameters = content.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise CheckFailed(f"\"parameters\" is {parameters!r}; MLServer expects an object of named fields.",
                          "Write it as { \"uri\": ..., \"extra\": {...} }, or leave it out.")
    uri = parameters.get("uri")
    if uri is not None and not isinstance(uri, str):
        raise CheckFailed(f"parameters.uri is {uri!r}; it is a path, a string.", "Write the path in double quotes.")
    inside = os.path.normpath(folder / uri) if uri else ""  # no symlinks followed: the link is the lab's
    if uri and not inside.startswith(os.path.normpath(folder) + os.sep) and inside != os.path.normpath(folder):
        raise CheckFailed(f"parameters.uri is {uri!r}, which points outside {folder.name}/. It works where your "
                          "notebook is, and breaks where the folder is copied: when your notebook is graded, "
                          "and in the image of notebook 06.",
                          f"Name a file inside {folder.name}/ (the lab put the checkpoint there), relative to it.")
    if uri and not (folder / uri).exists():
        raise CheckFailed(f"parameters.uri is {uri!r}, which does not exist (relative to {folder.name}/).",
                          "The lab put the checkpoint into the folder, as tinyvit.safetensors.")
    return content


def _check_batching_values(content: dict) -> None:
    """max_batch_size a whole number, max_batch_time a number of seconds a lone request can
    afford to wait (MLServer accepts any number and says nothing)."""
    size, wait = content.get("max_batch_size"), content.get("max_batch_time")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise CheckFailed(f"max_batch_size is {size!r}; it is a whole number of requests (1 or more).",
                          "It counts requests merged into one predict() call.")
    if wait is None:
        return
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait < 0:
        raise CheckFailed(f"max_batch_time is {wait!r}; it is a number of seconds (0 or more).",
                          "It is how long MLServer holds the first request of a batch for others to join.")
    if wait > LONGEST_BATCH_WAIT_SECONDS:
        raise CheckFailed(f"max_batch_time is {wait:g}. MLServer reads it in seconds: a request that arrives "
                          f"alone would wait {wait:g} s for company before the model sees it. Under a steady "
                          "load the batches fill up first, so this would seem to work. Did you mean "
                          "milliseconds?",
                          "Write the wait in seconds; a millisecond is 0.001.")


def server_settings(folder: PathLike, expected_workers: int | None = None, debug_off: bool = False) -> None:
    """``settings.json``: how the server runs (with ``expected_workers``, the worker count
    the exercise asks for)."""
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
                          "Bind the server to this machine's loopback address only while you develop.")
    workers = content.get("parallel_workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise CheckFailed(f"parallel_workers is {workers!r}; it is a whole number of processes (0 or more).",
                          "It counts inference worker processes.")
    if expected_workers is not None and workers != expected_workers:
        runs = (f"runs {workers} parallel worker(s)" if "parallel_workers" in content else
                "sets no parallel_workers, so MLServer runs its default, 1 worker")
        raise CheckFailed(f"settings.json {runs}; the exercise asks for {expected_workers}.",
                          "parallel_workers counts the worker processes that each load the model; with 0 "
                          "there is none and MLServer's own process runs it.")
    if debug_off and content.get("debug", True) is not False:
        shown = content.get("debug", "(not set: MLServer 1.7 defaults to true)")
        raise CheckFailed(f"settings.json has debug {shown!r}; the exercise turns debug mode off.",
                          "JSON's booleans are lower case.")
    passed(f"settings.json: host {content['host']}, {workers} parallel worker(s)")


def service(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
            implementation: str = "serve-model.TinyViTModel") -> None:
    """Notebook 01: the course text's single-image service answers one ``[H, W, 3]`` image
    (NumpyCodec, no batch axis) with the model's probabilities: one instance, called with two
    images drawn for this run whose answers differ (an answer that ignores its image, or
    repeats the first, fails)."""
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse

    from labkit.model.reference import in_process_model

    model = load_service(folder, implementation)
    _, images, _ = distinct_images(2, checkpoint)
    expected = in_process_model(checkpoint).probabilities(images)
    first = None
    for number, (image, reference) in enumerate(zip(images, expected), start=1):
        request = InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, image)])
        response = call(model.predict(request), "predict()")
        if not isinstance(response, InferenceResponse) or not response.outputs:
            raise CheckFailed(f"predict() returned {type(response).__name__}, not an answer with an output.",
                              "With @decode_args on predict(), the array you return becomes the output.")
        probabilities = _decoded(response.outputs[0])
        if probabilities.size != reference.size:
            raise CheckFailed(f"predict() returned {probabilities.size} values of shape {list(probabilities.shape)} "
                              f"for one image; TinyViT has {reference.size} classes.",
                              "Return the network's output for the image: one row of class probabilities.")
        row = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if not np.isclose(row.sum(), 1, atol=1e-3):
            raise CheckFailed("The values predict() returned do not sum to 1: they are logits, not probabilities.",
                              "The network returns logits; probabilities come from a softmax over the classes.")
        if not np.allclose(row, reference, rtol=1e-3, atol=1e-6):
            what = ("the same probabilities as for the first image, though the model tells them apart: it does "
                    "not classify the image it is given" if first is not None and np.allclose(row, first, rtol=1e-6)
                    else "probabilities that differ from TinyViT's for the same image")
            raise CheckFailed(f"For image {number} of {len(images)}, predict() returned {what}.",
                              "Preprocess the payload it gets with the transform from load(), and run the model "
                              "that load() built.")
        first = row
    passed(f"serve-model.py imports, load() builds TinyViT, predict() answers {len(images)} different images "
           "like the model")


def load_service(folder: PathLike, implementation: str) -> MLModel:
    """Import the class the exercise names (``"<file>.<Class>"``) from the folder as MLServer
    does and run ``load()``; the model. It does not depend on ``model-settings.json``: a
    mistake there costs that file's own exercise, not the service's as well."""
    from mlserver.settings import ModelParameters, ModelSettings

    folder = Path(folder).resolve()
    module_name, _, class_name = implementation.rpartition(".")
    module_file = folder / f"{module_name}.py"
    require_service_file(module_file)
    module = import_fresh(module_file)  # an import error is named here, with its line
    try:
        cls = model_class(module, module_name, class_name)
    except CheckFailed as failure:
        raise CheckFailed(f"{failure.what} The exercise asks for a class {class_name} in {module_file.name}.",
                          failure.hint) from None
    # MLServer's default parameters.uri is the model's folder, where the checkpoint link is.
    settings = ModelSettings(name=folder.name, implementation=cls,
                             parameters=ModelParameters(uri=str(folder)))
    with quiet_mlserver_logs():
        model = cls(settings)
        loaded = call(model.load(), "load()")
    if loaded is not True:
        # MLServer sets model.ready = await model.load(): anything but True never gets ready.
        raise CheckFailed(f"load() returned {loaded!r}, so MLServer would never mark the model as ready "
                          "(the server would start and wait forever for it).",
                          "MLServer reads load()'s return value as \"ready\".")
    if not hasattr(model, "model"):
        raise CheckFailed("load() did not keep the network: self.model is not set.",
                          "predict() runs on what load() kept on self.")
    return model


def require_service_file(module_file: Path) -> None:
    """CheckFailed naming the exercise cell when the service's Python file is not written yet."""
    if not module_file.is_file():
        name = f"{module_file.parent.name}/{module_file.name}"
        raise CheckFailed(f"{name} does not exist yet.", f"Write it with the cell that starts with %%writefile {name}")


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


# Options a requirements file may carry that change where pip looks, not what it installs.
INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--pre",
                 "--prefer-binary", "--only-binary", "--no-binary")


def requirements(folder: PathLike) -> None:
    """Notebook 06: ``requirements.txt`` for ``mlserver build``: any valid pip requirements
    file (comments, index options, extras, markers, any spelling of a name) in which every
    package the service imports admits the version this lab runs and no other release series
    (``==``, ``~=`` or a ``>=,<`` range), and uvloop admits no 0.22 or later."""
    from importlib.metadata import version

    path = Path(folder) / "requirements.txt"
    if not path.is_file():
        raise CheckFailed(f"{path.parent.name}/requirements.txt does not exist yet.",
                          f"Write it with a cell that starts with %%writefile {path.parent.name}/requirements.txt")
    pins = _read_requirements(path.read_text())
    missing = [name for name in SERVICE_DISTRIBUTIONS if name not in pins]
    if missing:
        raise CheckFailed(f"requirements.txt does not list {missing}, which serve-model.py and its helpers "
                          "import: the image would not have them.",
                          "List every package the service imports, by its name on PyPI (PIL's is pillow).")
    for name in SERVICE_DISTRIBUTIONS:
        _check_tested_series(pins[name], version(name))
    uvloop = pins.get("uvloop")
    if uvloop is None:
        raise CheckFailed("requirements.txt does not list uvloop: MLServer 1.7.1 allows any uvloop, pip takes the "
                          "newest, and with 0.22 every parallel worker crash-loops.",
                          "Add uvloop with a specifier that admits only releases before 0.22.")
    broken = [candidate for candidate in ("0.22.0", "0.22.1", "0.23.0", "1.0.0")
              if uvloop.specifier.contains(candidate, prereleases=True)]
    if broken:
        raise CheckFailed(f"{uvloop} admits uvloop {broken[0]}: with 0.22 or later every parallel worker of "
                          "MLServer 1.7.1 crash-loops.", "Keep uvloop below 0.22.")
    if not uvloop.specifier.contains(version("uvloop"), prereleases=True):
        raise CheckFailed(f"{uvloop} does not admit uvloop {version('uvloop')}, the one you tested.",
                          "Admit the uvloop this lab runs.")
    passed(f"requirements.txt: {len(pins)} packages in pip's format, each admitting the tested version only")


def _read_requirements(text: str) -> dict:
    """{normalised name: Requirement} of a pip requirements file, for this environment
    (a line whose marker is false here is left out); CheckFailed names a line pip refuses."""
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    lines = text.replace("\\\n", "").splitlines()  # pip joins lines that end with a backslash
    for number, raw in enumerate(lines, start=1):
        line = re.split(r"(^|\s)#", raw, maxsplit=1)[0].strip()  # pip: a comment starts at " #"
        if not line:
            continue
        if CONDA_LINE.match(line):
            raise CheckFailed(f"Line {number}, {line!r}, is conda's format (name=version=build, what `conda list "
                              "-e` writes); pip, which `mlserver build` runs, cannot read it.",
                              "pip's format: a package name, then a version specifier.")
        line = re.split(r"\s--?[a-z]", line, maxsplit=1)[0].strip() if not line.startswith("-") else line
        if line.startswith("-"):
            if line.split()[0].split("=")[0] not in INDEX_OPTIONS:
                raise CheckFailed(f"Line {number}, {line!r}: the image is built from this file alone, and that "
                                  "option points pip at something the build folder does not have.",
                                  "List the packages themselves; index options such as --extra-index-url are fine.")
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise CheckFailed(f"Line {number}, {line!r}, is not a pip requirement ({error}).",
                              "pip's format: a package name, then a version specifier.") from None
        if requirement.url:
            raise CheckFailed(f"Line {number}, {line!r}, installs from a URL, not a tested release.",
                              "Name the package and the versions it may take.")
        if requirement.marker is not None and not requirement.marker.evaluate(default_environment()):
            continue  # for another platform or Python: not installed here
        pins[canonicalize_name(requirement.name)] = requirement
    return pins


def _check_tested_series(requirement: object, installed: str) -> None:
    """``requirement`` admits ``installed`` and no release of another series (the next or
    previous minor, the next major): what the image installs is what was tested."""
    from packaging.version import Version

    name, specifier = requirement.name, requirement.specifier
    if not specifier:
        raise CheckFailed(f"{name} has no version ({requirement}): next month's build would install whatever "
                          "is newest then, not what you tested.",
                          "Give every package a version specifier.")
    if not specifier.contains(installed, prereleases=True):
        raise CheckFailed(f"{requirement} does not admit {name} {installed}, the version this lab runs and you "
                          "tested.", "Read the versions off the environment you tested in (pip show <name>).")
    tested = Version(installed)
    series = Version(f"{tested.major}.{tested.minor}")
    # From below: the tightest lower bound must lie in the tested series (a release of an
    # earlier one is admitted otherwise). From above: the next minor and major releases.
    lowers = [Version(spec.version.removesuffix(".*")) for spec in specifier
              if spec.operator in (">=", ">", "==", "~=", "===")]
    if not lowers or max(lowers) < series:
        start = f" (from {max(lowers)})" if lowers else ""
        raise CheckFailed(f"{requirement} admits {name} releases before {series}{start}, which you have not tested: "
                          "the image could install one.",
                          "Narrow the specifier to the version you tested (or its patch releases).")
    probes = [f"{tested.major}.{tested.minor + 1}.0", f"{tested.major}.{tested.minor + 1}.1", f"{tested.major + 1}.0.0"]
    admitted = [probe for probe in probes if specifier.contains(probe, prereleases=True)]
    if admitted:
        raise CheckFailed(f"{requirement} admits {name} {admitted[0]}, a release you have not tested: the image "
                          "could install it.",
                          "Narrow the specifier to the version you tested (or its patch releases).")


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
    if not (context / "requirements.txt").is_file():
        # Its content is Exercise 1's, checked there: one mistake costs one exercise.
        raise CheckFailed("The build folder has no requirements.txt: the image would install nothing for the "
                          "service.", "Write shipped/requirements.txt (Exercise 1), then build the folder again.")
    uri = (read_json(context / "model-settings.json").get("parameters") or {}).get("uri", ".")
    weights = (context / uri).resolve()
    if not weights.is_file() or (context / uri).is_symlink() or context.resolve() not in weights.parents:
        raise CheckFailed(f"The model's uri {uri!r} is not a weights file inside the build folder: the image "
                          "would have no weights.",
                          "Build from the folder labkit.serving.packaging.build_context made.")
    passed("the build folder has MLServer's Dockerfile, a requirements file and the weights")


# Right after a cell writes the file: model-settings.json may come before the code it names.
CHECKS_BY_FILE = {"model-settings.json": lambda folder: model_settings(folder, require_code=False),
                  "settings.json": server_settings, "requirements.txt": requirements}


def check_each_write(folder: PathLike, service_check: Callable[[Path], None] = service) -> None:
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

    after_cell.lab_checked_folder = str(folder)
    for callback in list(shell.events.callbacks["post_run_cell"]):
        if getattr(callback, "lab_checked_folder", None) == str(folder):
            shell.events.unregister("post_run_cell", callback)
    shell.events.register("post_run_cell", after_cell)


def top5_file(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
              implementation: str = "serve-model.TopFiveModel") -> None:
    """Notebook 03: the top-5 service answers a batch of two different images in this
    process: ``labels`` and ``scores`` ``[2, 5]``, each row that image's own top 5."""
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest

    from labkit.model.reference import in_process_model

    model = load_service(folder, implementation)
    _, images, _ = distinct_images(2, checkpoint, same_size=True)
    request = InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, np.stack(images))])
    response = call(model.predict(request), "predict()")
    outputs = {output.name: output for output in getattr(response, "outputs", None) or []}
    if set(outputs) != {"labels", "scores"}:
        raise CheckFailed(f"predict() returned outputs {sorted(outputs)}; expected 'labels' and 'scores'.",
                          "Return an InferenceResponse with two outputs, named labels and scores.")
    labels = _decoded(outputs["labels"])
    scores = _decoded(outputs["scores"])
    if labels.shape != (2, 5) or scores.shape != (2, 5):
        raise CheckFailed(f"For 2 images predict() returned labels {list(labels.shape)} and scores "
                          f"{list(scores.shape)}; expected [2, 5] for both.",
                          "One row per image of the batch, the top 5 of that row.")
    compare_top_k(labels, scores, *in_process_model(checkpoint).top_k(images), what="images of the batch")
    passed("serve-model.py answers a batch of 2 different images with each image's own top 5, labels and scores")


def _decoded(output: object) -> object:
    """An output of the student's response as an array, the way a client would read it."""
    try:
        return decode_output(output)
    except Exception as error:
        raise CheckFailed(f"The output {output.name!r} cannot be read back ({type(error).__name__}: {error}).",
                          "Encode each output from a NumPy array with NumpyCodec.encode_output.") from None


METRIC_MODULES = ("mlserver", "mlserver.metrics", "mlserver.metrics.context")


@contextlib.contextmanager
def recorded_metrics(observations: list) -> Iterator[list]:
    """``mlserver.log`` and ``mlserver.register`` (under every name a service may import them
    by) record ``(metric, value)`` into ``observations`` instead of needing a running server."""
    modules = [importlib.import_module(name) for name in METRIC_MODULES]
    originals = [(module, name, getattr(module, name)) for module in modules for name in ("log", "register")]

    def log(**metrics: float) -> None:
        observations.extend(metrics.items())

    for module in modules:
        module.log, module.register = log, lambda *args, **kwargs: None
    try:
        yield observations
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


def metric_file(folder: PathLike, metric: str = CONFIDENCE_METRIC,
                implementation: str = "confidence.ConfidenceModel",
                checkpoint: PathLike = DEFAULT_CHECKPOINT) -> None:
    """Notebook 07: the service logs ``metric`` once per image, each value that image's own
    top-1 probability: called in this process on a batch of 3 different images, every value
    it logs is compared with the model's (in any order), so a batch's mean logged once per
    image, one value per call or one image's value for all fails."""
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest

    from labkit.model.reference import in_process_model

    _, images, _ = distinct_images(3, checkpoint, same_size=True)
    observations = []
    with recorded_metrics(observations):
        model = load_service(folder, implementation)
        request = InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, np.stack(images))])
        call(model.predict(request), "predict()")
    try:
        values = sorted(float(value) for name, value in observations if name == metric)
    except (TypeError, ValueError):
        kinds = sorted({type(value).__name__ for name, value in observations if name == metric})
        raise CheckFailed(f"predict() logged {metric} values of type {kinds}: a histogram observes one number at a "
                          "time.", "One plain number per image.") from None
    expected = np.sort(in_process_model(checkpoint).probabilities(images).max(axis=1))
    others = sorted({name for name, _ in observations} - {metric})
    if not values:
        raise CheckFailed(f"predict() logged no {metric} for a batch of 3 images"
                          + (f" (it logged {others})." if others else "."),
                          "Log the metric by that name, with mlserver.log, inside predict().")
    if len(values) != len(images):
        raise CheckFailed(f"predict() logged {len(values)} value(s) of {metric} for a batch of {len(images)} "
                          "images.", "One value per image of the batch: a request, or a merged batch, holds "
                          "several.")
    if not np.allclose(values, expected, rtol=1e-4, atol=1e-9):
        same = np.allclose(values, values[0], rtol=1e-6)
        raise CheckFailed(f"The {len(values)} values predict() logged for 3 different images are not their top-1 "
                          "probabilities" + (": all three are the same value." if same else "."),
                          "Each image's own value, from its own row of the probabilities.")
    passed(f"{metric}: one value per image, each image's own top-1 probability (a batch of 3, in this process)")
