"""The student's Python file imported the way MLServer imports it (its folder first on
``sys.path``, a fresh copy each time it may have changed), its class checked, and its
coroutines run, every exception turned into feedback that names the student's file and line.
What imports the file runs in a child process (:mod:`labkit.checks.isolated`): the file
imports torch, which the notebook's kernel should not hold."""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import importlib.util
import re
import signal
import sys
import threading
import traceback
import uuid
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Coroutine, Iterator

from labkit.checks.feedback import CheckFailed
from labkit.checks.isolated import in_child
from labkit.model.service import quiet_mlserver_logs, run_coroutine
from labkit.paths import PathLike

if TYPE_CHECKING:
    from mlserver import MLModel


def resolve_implementation(folder: Path, implementation: str) -> None:
    """Check that the class ``implementation`` names exists and subclasses ``MLModel``, as
    MLServer would find it (the folder first on ``sys.path``); CheckFailed names what is wrong.
    A file that does not import but defines a class of that name passes: its own check says why.

    A file of the folder is read first: a class of that name whose bases name ``MLModel`` is
    enough, with no import (importing the student's file means importing torch, and that
    happens in a child process). Any other way of writing it is imported to decide."""
    module_name, _, class_name = implementation.rpartition(".")
    module_file = folder / f"{module_name}.py"
    if module_file.is_file():
        if _declares_model_class(module_file, class_name):
            return
        _import_and_find(str(folder), implementation)
        return
    if "." not in module_name and installed_elsewhere(module_name):
        # helper session 8: "timm.TimmClassifier" (not imported here: timm brings torch)
        raise CheckFailed(f"\"implementation\" names {module_name}.{class_name}, and {folder.name}/ has no "
                          f"{module_name}.py: MLServer would import the installed package {module_name} instead, "
                          f"which is not a runtime of this lab.",
                          "Name the module that defines the class by its full dotted path.")
    if "." not in module_name and module_name.startswith("mlserver"):
        # helper session 10: mlserver_timm.TimmClassifier was "checked once mlserver_timm.py exists",
        # a file no student writes: MLServer's runtimes are packages, and none of that name is here.
        raise CheckFailed(f"\"implementation\" is {implementation!r}: {module_name} reads like one of MLServer's "
                          "runtime packages (mlserver_sklearn, mlserver_huggingface, ...), and no package or file "
                          f"of the folder named {module_name} is installed or written here, so MLServer could not "
                          "import it.",
                          "The class this folder serves is named by its file and its class, as MLServer imports "
                          "them.")
    try:
        if "." not in module_name:  # a file of the folder, not written yet (sys.modules may hold another)
            raise ImportError(module_name)
        module = importlib.import_module(module_name)  # an installed runtime, e.g. labkit.runtimes.timm
    except ImportError:
        files = sorted(path.name for path in folder.glob("*.py"))
        raise CheckFailed(f"\"implementation\" names {module_name}.py, but {folder.name}/ has {files}.",
                          "Spell the file name exactly as on disk, without .py (a hyphen is fine).") from None
    model_class(module, module_name, class_name)


def installed_elsewhere(module_name: str) -> bool:
    """Whether an installed package (site-packages, the standard library) answers to
    ``module_name``, found without importing it; a file of another folder that an earlier
    import put on ``sys.path`` does not count."""
    import sysconfig

    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return False
    origin = spec and (spec.origin if spec.origin not in (None, "namespace") else
                       next(iter(spec.submodule_search_locations or []), None))
    if not origin or origin in ("built-in", "frozen"):
        return bool(origin)
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]).resolve() for key in ("purelib", "platlib", "stdlib", "platstdlib") if key in paths}
    return any(Path(origin).resolve().is_relative_to(root) for root in roots)


def defined_classes(module_file: Path, name: str) -> list[str] | None:
    """The classes the file defines at its top level (read, not imported), when none of them
    and no other top-level binding (an import, an assignment) is called ``name``; None when
    the file binds ``name`` somehow, or does not parse (its own check names the syntax error)."""
    try:
        tree = ast.parse(module_file.read_text())
    except (SyntaxError, ValueError, UnicodeDecodeError, OSError):
        return None
    bound = set()
    for node in tree.body:
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            return None  # conditional definitions: left to the import
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound |= {target.id for target in targets if isinstance(target, ast.Name)}
    if name in bound or "*" in bound:
        return None
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef)]


def _declares_model_class(module_file: Path, class_name: str) -> bool:
    """Whether the file (it parses) defines ``class <class_name>(...MLModel...)`` at its top level."""
    try:
        tree = ast.parse(module_file.read_text())
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return False
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return any((isinstance(base, ast.Name) and base.id == "MLModel")
                       or (isinstance(base, ast.Attribute) and base.attr == "MLModel") for base in node.bases)
    return False


@in_child
def _import_and_find(folder: str, implementation: str) -> None:
    """The file imported as MLServer imports it, and the class looked up in it."""
    module_name, _, class_name = implementation.rpartition(".")
    module_file = Path(folder) / f"{module_name}.py"
    try:
        module = import_fresh(module_file)
    except CheckFailed:
        # The file does not import: its own check says why. The settings are right if they
        # name a class the file defines (one mistake, one exercise).
        if re.search(rf"^class\s+{re.escape(class_name)}\s*[(:]", module_file.read_text(), re.M):
            return
        raise CheckFailed(f"{module_file.name} defines no class {class_name} (and does not import yet).",
                          "The class name in \"implementation\" must match the class in the file, "
                          "upper and lower case included.") from None
    model_class(module, module_name, class_name)


def model_class(module: ModuleType, module_name: str, class_name: str) -> type:
    """``module.<class_name>``, checked to be a subclass of ``MLModel``."""
    from mlserver import MLModel

    cls = getattr(module, class_name, None)
    if cls is None and class_name != class_name.strip() and getattr(module, class_name.strip(), None) is not None:
        # helper session 8: "defines no class X (it defines ['X'])", the space unseen
        raise CheckFailed(f"\"implementation\" names the class {class_name!r}, with a space at one end: MLServer "
                          "looks it up as written, and no class has that name.",
                          "The class name exactly as the file defines it, with nothing around it.")
    if isinstance(cls, ModuleType) and cls.__name__ == f"{module_name}.{class_name}":
        # helper session 8: "timm is not a subclass of mlserver.MLModel"
        raise CheckFailed(f"\"implementation\" ends with {class_name}, which is a module ({module_name}.{class_name}), "
                          "not a class: MLServer imports what comes before the last dot and takes the last part "
                          "as the class's name.", "The module, a dot, then the name of the class it defines.")
    if cls is None:
        classes = [name for name, value in vars(module).items() if isinstance(value, type)
                   and value.__module__ == module.__name__]
        raise CheckFailed(f"{module_name} defines no class {class_name} (it defines {classes}).",
                          "The class name in \"implementation\" must match the class in the file, "
                          "upper and lower case included.")
    if not (isinstance(cls, type) and issubclass(cls, MLModel)):
        raise CheckFailed(f"{class_name} is not a subclass of mlserver.MLModel: MLServer cannot serve it.",
                          "MLServer serves classes derived from its MLModel.")
    if cls.__module__.split(".")[0] == "mlserver":
        # helper session 10: "serve-model.MLModel" passed (the file imports MLModel), and MLServer
        # then served the base class: every request a 500 NotImplementedError, blamed on the service.
        raise CheckFailed(f"\"implementation\" names {module_name}.{class_name}, which is MLServer's own "
                          f"{cls.__module__}.{cls.__name__} that {module_name} imports, not a class it defines: "
                          "MLServer would serve it with none of your code, and answer every request with an error.",
                          f"Name the class that {module_name} defines itself.")
    return cls


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
        hint = (f"The exercise's class is called {class_name}, upper and lower case included: MLServer looks it up "
                f"by that name in {module_file.name}." if "defines no class" in failure.what else failure.hint)
        raise CheckFailed(f"{failure.what} The exercise asks for a class {class_name} in {module_file.name}.",
                          hint) from None
    # MLServer's default parameters.uri is the model's folder, where the checkpoint link is.
    settings = ModelSettings(name=folder.name, implementation=cls,
                             parameters=ModelParameters(uri=str(folder)))
    with quiet_mlserver_logs():
        model = cls(settings)
        loaded = call(_awaitable_load(model), "load()")
    kept = [name for name, value in vars(model).items() if inspect.iscoroutine(value)]
    if kept:
        for name in kept:
            vars(model)[name].close()  # never awaited: said here, not warned about later
        raise CheckFailed(f"load() kept a coroutine in self.{kept[0]}, not its result: a coroutine function's call "
                          "does nothing until it is awaited.",
                          "The template's load() awaits what it calls.")
    if not loaded:
        # MLServer sets model.ready = await model.load() and asks `if not model.ready`: a value
        # that is false (None, False) never gets ready; any true one does (helper session 6: a
        # load() that returned the network was refused, and MLServer served it).
        shown = repr(loaded) if len(repr(loaded)) <= 60 else f"a {type(loaded).__name__}"
        raise CheckFailed(f"load() returned {shown}, so MLServer would never mark the model as ready "
                          "(the server would start and wait forever for it).",
                          "MLServer reads load()'s return value as \"ready\".")
    if not hasattr(model, "model"):
        raise CheckFailed("load() did not keep the network: self.model is not set.",
                          "predict() runs on what load() kept on self.")
    return model


def _awaitable_load(model: MLModel) -> Coroutine:
    """``model.load()`` as a coroutine, as MLServer awaits it. A plain ``def load`` whose
    result is not awaitable is named as such (helper session 5: "load() raised ValueError: a
    coroutine was expected, got True", about a load() that raised nothing)."""
    if inspect.iscoroutinefunction(type(model).load):
        return model.load()
    try:
        result = model.load()
    except Exception as error:
        raise CheckFailed(f"load() raised {type(error).__name__}: {error}",
                          "MLServer would not load the model; fix the code and write the file again.") from None
    if not inspect.isawaitable(result):
        raise CheckFailed(f"load() is a plain function (def) that returned {result!r}, and MLServer awaits what "
                          "load() returns: it must be a coroutine function.",
                          "MLModel's load() is async, as in the template.")

    async def awaited() -> object:
        return await result
    return awaited()


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
        assert spec is not None and spec.loader is not None  # a .py file's, which has its loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise CheckFailed(f"{module_file.name} line {error.lineno}: {error.msg}.",
                          "Fix the syntax error, then run the cell that writes the file again.") from None
    except Exception as error:
        where = _line_in(error, module_file)
        if type(error).__name__ == "CodecNotFound":
            # helper session 6: `-> list` on predict() was told to check the import lines
            raise CheckFailed(f"Importing {module_file.name} failed{where}: MLServer's @decode_args found no codec for "
                              f"a type annotation of the function it decorates ({error}).",
                              "@decode_args picks its codecs from the annotations of predict()'s argument and "
                              "return value: the template's annotations are ones it has codecs for.") from None
        raise CheckFailed(f"Importing {module_file.name} failed{where}: {type(error).__name__}: {error}",
                          "MLServer imports the file the same way; check the import lines.") from None
    finally:
        sys.path.remove(folder)
    return module


def _line_in(error: BaseException, module_file: Path) -> str:
    """" on line N (<the line>)": the last place in the student's file the error passed."""
    import traceback

    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if Path(frame.filename).resolve() == module_file.resolve()]
    if not frames:
        return ""
    return f" on line {frames[-1].lineno} ({(frames[-1].line or '').strip()[:80]})"


# Seconds one call of the student's code may take before the check names it as one that does
# not return (load() builds TinyViT: seconds on a quiet machine, a minute on a busy one; one
# predict() of two images takes well under a second).
TIME_LIMITS = {"load()": 180.0}
TIME_LIMIT = 60.0


class _Expired(BaseException):
    """Raised in the student's code when its time is up: a BaseException, so that no
    ``except Exception`` in their code swallows it."""


def _limited(coroutine: Coroutine, seconds: float) -> object:
    """Run ``coroutine``, interrupted after ``seconds`` by a timer signal. Only where the
    coroutine can run in the main thread (the check's child process, where no event loop
    runs): Python delivers signals there. Elsewhere (a notebook's kernel) without a limit."""
    import asyncio

    try:
        asyncio.get_running_loop()
        in_a_loop = True
    except RuntimeError:
        in_a_loop = False
    if in_a_loop or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return run_coroutine(coroutine)
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # a timer of someone else's (a test runner's): keep it
        return asyncio.run(coroutine)
    with _time_limit(seconds):
        return asyncio.run(coroutine)


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: object) -> None:
        raise _Expired()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call(coroutine: Coroutine, what: str) -> object:
    """Run one of the student's coroutines; an exception becomes feedback, and so does a call
    that does not return within its time limit."""
    limit = TIME_LIMITS.get(what, TIME_LIMIT)
    try:
        return _limited(coroutine, limit)
    except _Expired:
        raise CheckFailed(f"{what} did not return within {limit:.0f} s.",
                          "Look for a loop that never ends, or code that waits for input.") from None
    except CheckFailed:
        raise
    except NotImplementedError as error:
        # The function that still raises it, which may be one predict() calls (07's log_confidence()).
        frames = traceback.extract_tb(error.__traceback__)
        raising = f"{frames[-1].name}()" if frames and frames[-1].name.isidentifier() else what
        raise CheckFailed(f"{raising} is not written yet (it raises NotImplementedError).",
                          "Replace the placeholder lines with your code.") from None
    except Exception as error:
        named = _named_error(error, what)
        if named is not None:
            raise named from None
        raise CheckFailed(f"{what} raised {type(error).__name__}: {error}{_where_in_own_code(error)}",
                          "MLServer would answer this request with an error; fix the code and "
                          "write the file again.") from None


def _named_error(error: Exception, what: str) -> CheckFailed | None:
    """Errors whose own words say the opposite of the mistake, or nothing of it (helper session 17)."""
    from labkit.contract import INPUT_NAME

    text = str(error)
    if isinstance(error, TypeError) and "can't be used in 'await' expression" in text and what == "predict()":
        return CheckFailed("predict() is a plain function (def) and returned its answer, and MLServer awaits what "
                           "predict() returns: it must be a coroutine function.",
                           "The template's predict() is written with async def.")
    found = re.search(r"Input '([^']+)' was not found\. Available inputs are '([^']*)'", text)
    if found and what == "predict()":
        argument = next((name for name in found.groups() if name != INPUT_NAME), found.group(2))
        return CheckFailed(f"predict()'s argument is named {argument!r}: @decode_args hands predict() the request's "
                           f"input of the same name, and the requests carry {INPUT_NAME!r}.",
                           "A client names the input it sends; predict() asks for it by its argument's name.")
    return None


def _where_in_own_code(error: BaseException) -> str:
    """The last line of the student's own files that the error passed through."""
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    own = [frame for frame in traceback.extract_tb(error.__traceback__)
           if "site-packages" not in frame.filename and "/labkit/" not in frame.filename
           and frame.filename.endswith(".py") and not frame.filename.startswith((stdlib, "<"))]
    if not own:
        return ""
    return f"\nIn your code: {Path(own[-1].filename).name}, line {own[-1].lineno}: {own[-1].line}"
