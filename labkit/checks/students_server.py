"""The student's running server, found and asked: the one place the checks do it.

:func:`service_server` finds the server a check talks to (the one the kernel started from the
folder, or one the checks start themselves from the student's files); :func:`ask_top5`,
:func:`ask_probabilities` and :func:`scrape` ask it, and :func:`did_not_answer` is what every
check says when it does not answer; :func:`not_stale` refuses a server older than its files;
:func:`log_of` and :func:`service_file` name where the student looks next.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.checks.feedback import CheckFailed
from labkit.checks.student_code import defined_classes, require_service_file
from labkit.client import InferenceFailed, files_request, infer_outputs
from labkit.paths import PathLike
from labkit.serving.server import ModelServer, ServerStartError, last_exception, running_server

if TYPE_CHECKING:
    import pandas as pd
    from mlserver.types import InferenceRequest


# Notebook 03's service: the class its exercise asks for, in the folder's serve-model.py.
TOP5_IMPLEMENTATION = "serve-model.TopFiveModel"
# Servers the checks started themselves, one per folder, kept for the checks that follow.
_started_by_checks: dict = {}


def service_server(where: ModelServer | PathLike, implementation: str = TOP5_IMPLEMENTATION,
                   declared: dict | None = None, own_only: bool = False) -> ModelServer:
    """The server a service check talks to: ``where`` itself if it is one; else the server
    this kernel runs for the folder ``where``; else (or with ``own_only``), when none runs (its
    start cell failed, say on a mistake in model-settings.json), one the check starts from the
    folder's code with the name and class the exercise gives (and the model settings
    ``declared``, the student's own). A settings mistake costs its own check, not the
    service's as well."""
    if isinstance(where, ModelServer):
        return where
    folder = Path(where).resolve()
    server = None if own_only else running_server(folder)
    if server is not None:
        return server
    given = {"name": folder.name, "implementation": implementation, **(declared or {})}
    own = _started_by_checks.get(folder)
    if (own is not None and own.running and not own.changed_since_start()
            and own.options.model_settings == given):
        return own
    if own is not None:
        own.stop()
    module_file = f"{implementation.rpartition('.')[0]}.py"
    require_service_file(folder / module_file)
    class_name = implementation.rpartition(".")[2]
    defined = defined_classes(folder / module_file, class_name)
    if defined is not None:
        # Named here, in the exercise's words: MLServer's own message ("Invalid python path: No
        # module named 'serve-model.TopFiveModel'") points at the hyphen, after a 15 s start.
        raise CheckFailed(f"{module_file} defines no class {class_name} (it defines {defined}): the exercise's "
                          f"service is the class {class_name}.",
                          f"The exercise's class is called {class_name}, upper and lower case included: MLServer "
                          f"looks it up by that name in {module_file}.")
    # own_only: the caller has said why the kernel's server does not do (helper session 10: "No server
    # runs" printed under "The server this kernel runs ... does not serve this declaration").
    why = "" if own_only else f"No server of {folder.name}/ runs in this kernel (did its start cell fail?). "
    print(f"{why}This check starts {folder.name}/{module_file} itself, with the model name and class the exercise "
          "gives: it grades your service; model-settings.json is graded by its own check.")
    own = ModelServer(folder, model_settings=given)
    try:
        own.start(progress=False)
    except ServerStartError as error:
        reason = str(error).split("\nLast lines of the server log")[0]
        raise CheckFailed(f"Your service did not start in MLServer: {reason}",
                          f"Fix {module_file} where the error points, then run its cell and this check "
                          "again.") from None
    _started_by_checks[folder] = own
    return own


# One mistake costs once: notebook 03's three service checks grade in stages (one image per
# request, then a batch, then concurrent callers under adaptive batching). A later check first
# asks the service what the earlier stages ask, in silence; where the service already gives a
# wrong answer there, that stage's check is charged and the later one is not. Read from the
# service's behaviour, not from which checks ran before in the kernel: it grades the same at
# home, in any order, and under `make grade`. A service that does not answer at all (an error
# on every request) fails every stage: it earns nothing anywhere. Outputs under other names are
# charged by the first stage; later stages read them by their types (text and numbers) and
# grade what they carry.
#
# Each stage draws its images from a generator seeded by the service's own code and the
# stage: the silent run of a stage sees exactly the images its own check sees, so a mistake
# that shows on some images only (a sort across the rows, say) gets one verdict, counted
# once; and one hand-in gets the same images at home and under `make grade`. Another version
# of the code draws other images.


def draws(server: ModelServer, stage: str) -> np.random.Generator:
    """The generator of a stage's images: seeded by the service's code and the stage's name."""
    import hashlib

    try:
        code = (server.model_dir / service_file(server)).read_bytes()
    except OSError:
        return np.random.default_rng()
    digest = hashlib.sha256(code + stage.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))



def not_stale(server: ModelServer) -> None:
    changed = server.changed_since_start()
    if changed:
        raise CheckFailed(f"{', '.join(changed)} changed after this server started: it still runs the old "
                          "version, so checking it would tell you nothing about your edit.",
                          "Run the cell that starts this server again (it replaces the old one), then the "
                          "checks again.")


ANSWER_TIMEOUT = 60.0  # seconds a check waits for the service's answer to one request
# Servers (address and process) whose predict() took a request and never returned: their worker
# stays busy with it, so a later check fails at once instead of waiting ANSWER_TIMEOUT again.
_UNANSWERED: set[tuple] = set()


def _identity(server: ModelServer) -> tuple:
    process = getattr(server, "process", None)
    return server.infer_url, getattr(process, "pid", None)


def ask_top5(server: ModelServer, request: InferenceRequest, what: str,
             by_type: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The labels and scores of the service's answer to ``request``; ``by_type``: outputs
    under other names are read by their types, when there are two, one of text and one of
    numbers (a later stage grades what they carry; the first stage counts the names)."""
    import requests

    hung = CheckFailed(f"The server took {what} and gave no answer within {ANSWER_TIMEOUT:.0f} s, though it is "
                       "running: predict() did not return.",
                       f"Look for a loop that never ends in {service_file(server)}; {log_of(server)} shows where "
                       "it is busy.")
    if _identity(server) in _UNANSWERED:
        raise CheckFailed(f"This server is still busy with an earlier request its predict() never returned from, "
                          f"so it cannot answer {what} either.", hung.hint)
    try:
        outputs = infer_outputs(server.infer_url, request, timeout=ANSWER_TIMEOUT)
    except requests.ReadTimeout:
        # The server took the request and never answered: it runs, its predict() does not return.
        _UNANSWERED.add(_identity(server))
        raise hung from None
    except requests_errors() as error:
        raise did_not_answer(error, what) from None
    except InferenceFailed as error:
        raise error_answer(server, error, what) from None
    except ValueError as error:
        raise CheckFailed(f"The answer to {what} does not fit its own shape ({error}).",
                          "Return exactly one row per image of the request: under adaptive batching "
                          "MLServer splits your rows between the callers.", kind="rows") from None
    missing = {"labels", "scores"} - set(outputs)
    if missing and by_type:
        text = [value for value in outputs.values() if np.asarray(value).dtype.kind in "OUS"]
        numbers = [value for value in outputs.values() if np.asarray(value).dtype.kind in "fiu"]
        fractions = [value for value in numbers if np.asarray(value).dtype.kind == "f"]
        if len(text) == 1 and (len(numbers) == 1 or len(fractions) == 1):  # class indices beside them: not scores
            return text[0], (numbers if len(numbers) == 1 else fractions)[0]
    if missing:
        raise CheckFailed(f"The response has no output named {sorted(missing)} (it has {sorted(outputs)}).",
                          "A client reads the outputs by name: the exercise names the two it reads.",
                          kind="output names")
    return outputs["labels"], outputs["scores"]



def scrape(server: ModelServer) -> pd.DataFrame:
    from labkit.measure import metrics

    try:
        return metrics.scrape(server.metrics_url)
    except requests_errors() as error:
        raise did_not_answer(error, who="The server's /metrics") from None


def ask_probabilities(server: ModelServer, files: list[bytes]) -> None:
    from labkit.client import infer

    try:
        infer(server.infer_url, files_request(files))
    except requests_errors() as error:
        raise did_not_answer(error) from None
    except InferenceFailed as error:
        raise error_answer(server, error) from None


def did_not_answer(error: Exception, what: str = "", who: str = "The server") -> CheckFailed:
    """What a check says when nothing answers ``what`` (a request, ``/metrics``): not running."""
    asked = f" {what}" if what else ""
    return CheckFailed(f"{who} did not answer{asked} ({type(error).__name__}): it is not running.",
                       "Run the cell that starts it and read what it printed.")


def error_answer(server: ModelServer, error: InferenceFailed, what: str = "") -> CheckFailed:
    """What a check says when the service answers ``what`` with an error: the status, the
    server's message, and for an error inside the service the last exception of its log."""
    cause = last_exception(server.log) if error.inside_the_server else ""
    if re.search(r"Cannot handle this data type: \(1, 1\), [<|>]?[USO]", f"{error.message} {cause}"):
        # helper session 8: a service that decodes the request itself handed PIL the JPEG bytes
        # as text; PIL's words about a NumPy type did not say so
        cause += (" (PIL was given text or bytes, not pixels: the images of this request are encoded "
                  "files, JPEG bytes, which predict() must decode into pixels before it makes images of them)")
    cause = f"\nThe server log ends with: {cause}" if cause else ""
    asked = f" {what} with" if what else ""
    # helper session 16: gRPC's INTERNAL (13) was said as "HTTP 13", without the log's exception
    return CheckFailed(f"The service answered{asked} {error.label}: {error.message}{cause}",
                       f"The traceback is in {log_of(server)}; fix {service_file(server)}, "
                       "then start the server again.")


def requests_errors() -> tuple:
    """What ``requests`` raises when nothing listens (a server that failed to start or died)."""
    import requests

    return (requests.ConnectionError, requests.Timeout)


def log_of(server: ModelServer) -> str:
    """Where the student reads this server's log, named by their own variable for it
    (``confidence.log_tail()`` in 07, ``top3_server.log_tail()`` in 04) when the notebook
    holds one, so the advice can be followed as written."""
    try:
        from IPython import get_ipython

        namespace = get_ipython().user_ns
    except (ImportError, AttributeError):
        namespace = {}
    names = sorted(name for name, value in namespace.items() if value is server and not name.startswith("_"))
    if names:
        return f"its log: run {names[0]}.log_tail()"
    return f"the log of the server of {server.model_dir.name}/ (its .log_tail())"


def service_file(server: ModelServer) -> str:
    """The Python file the server's model settings name (``confidence.py`` in 07)."""
    try:
        implementation = server.model_settings["implementation"]
    except (KeyError, TypeError):
        return "your service's file"
    return f"{implementation.rpartition('.')[0]}.py"

