"""Checks of what a student's running server or function does (notebooks 02-07).

Each check compares what a student built with the in-process TinyViT (same
checkpoint), prints a line per passed check, and raises :class:`CheckFailed`
(an ``AssertionError``, so nbgrader counts it) that says what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from labkit.checks.common import (FLOAT16_LOSS, CheckFailed, check_shapes, compare_best_labels, distinct_images,
                                  TWINS, passed, same_probabilities, why_not_probabilities)
from labkit.checks.service_calls import metric_file
from labkit.checks.settings_files import BATCHING_KEYS, read_json, read_model_settings
from labkit.checks.student_code import defined_classes, require_service_file
from labkit.contract import BATCH_SIZE_METRIC, CONFIDENCE_METRIC, INPUT_NAME, MODEL_LOAD_LINE
from labkit.client import InferenceFailed, files_request, infer_outputs, pixels_request
from labkit.model import weights
from labkit.model.reference import reference_model
from labkit.paths import PathLike
from labkit.serving.server import ModelServer, ServerStartError, last_exception, running_server

if TYPE_CHECKING:
    import pandas as pd
    import requests
    from mlserver.types import InferenceRequest


def remote_classifier(classify_remote: Callable[[np.ndarray], np.ndarray],
                      checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 02: ``classify_remote(image)`` sends one ``[H, W, 3]`` image to the server
    and returns its 21841 probabilities. Called with images the student did not choose;
    what it sent is recorded to name a mistake."""
    _refuse_a_written_address(classify_remote)
    import inspect

    if inspect.iscoroutinefunction(classify_remote):
        # helper session 9: named as "sent no request" (the call returned a coroutine, never run)
        raise CheckFailed("classify_remote is written with async def: called as the exercise calls it, "
                          "classify_remote(image), it returns a coroutine that has not run, not probabilities.",
                          "The exercise's function is a plain def; requests waits for the answer itself.")
    names, images, _ = distinct_images(3, checkpoint, twin=True)  # the last: the first's size and border
    named = list(zip(names, images))
    expected = reference_model(checkpoint).probabilities(images)
    exchanges: list[tuple] = []
    answers: list = []
    served_before = _requests_served()
    with _recording_http(exchanges), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, image in named:
            try:
                answers.append(classify_remote(image.copy()))
            except Exception as error:
                what = f"classify_remote({name}) raised {type(error).__name__}: {error}"
                diagnosis = _grpc_diagnosis(error, what) or _urllib_diagnosis(error, what)
                if diagnosis is not None:
                    raise diagnosis from None
                # The count is read through `requests` too: its read is the check's, not the
                # student's (helper session 6: it was diagnosed as their request body).
                recorded = len(exchanges)
                reached = not exchanges and _requests_served() > served_before
                del exchanges[recorded:]
                raise _diagnose(exchanges, what, reached) from None
    # Requests through `requests` are recorded one by one; any other client (gRPC, urllib) is
    # seen by the servers this kernel runs, which count every inference request they take.
    if not exchanges and _requests_served() - served_before < len(named):
        raise CheckFailed("classify_remote sent no request to the server.",
                          "POST the request to server.infer_url inside the function: a stored answer "
                          "cannot know which image the check passes in.")
    # pydantic 1's methods, each deprecated alike (helper session 5: .dict() was refused and
    # .json() and .parse_obj() passed): "The `json` method is deprecated; use ... instead".
    # Only the student's own calls: MLServer's gRPC converters call .construct() themselves.
    deprecated = [found.group(1) for warning in caught
                  if (found := re.search(r"The `(\w+)` method is deprecated", str(warning.message)))
                  and "site-packages" not in warning.filename and "/labkit/" not in warning.filename]
    if deprecated:
        raise CheckFailed(f"classify_remote uses .{deprecated[0]}(), which is deprecated in MLServer 1.7 "
                          "(pydantic 2) and will go away.",
                          "pydantic 2 models have their own methods to turn a model into JSON text and to read "
                          "one back.")
    read_rows = []
    for (name, _), answer in zip(named, answers):
        try:
            row = np.asarray(answer, dtype=np.float64)
        except (TypeError, ValueError):
            raise CheckFailed(f"For {name} classify_remote returned a {type(answer).__name__}, not an array of "
                              "probabilities.",
                              "Return the decoded output, a NumPy array, not the response or its JSON.") from None
        # helper session 8: a column [21841, 1] passed (the values counted, not their shape)
        if row.size != expected.shape[1] or row.shape not in ((expected.shape[1],), (1, expected.shape[1])):
            raise CheckFailed(f"For {name} classify_remote returned shape {list(row.shape)}; expected "
                              f"{expected.shape[1]} probabilities (shape [21841] or [1, 21841]).",
                              "Decode the answer's first output with the codec that encoded the input; for "
                              "one image it has one row.")
        read_rows.append(row.reshape(-1))
    rows = np.stack(read_rows)
    _sent_other_pixels(exchanges, named)
    if np.allclose(rows, _softmax(expected), rtol=1e-3, atol=1e-7):
        raise CheckFailed("classify_remote returned a softmax of the server's probabilities: the server already "
                          "answers probabilities, and a second softmax flattens them (every value near 1/21841).",
                          "Return the server's answer as it is.")
    if same_probabilities(rows / 100, expected):
        raise CheckFailed("classify_remote returned percentages (each row sums to 100), not the server's "
                          "probabilities.", "Return the server's answer as it is.")
    for (name, _), row in zip(named, rows):
        wrong = why_not_probabilities(row)
        if wrong:
            # helper session 8: zeros (an answer decoded as uint8) were named as an answer kept,
            # log-probabilities sent the student to the pixels
            raise CheckFailed(f"For {name} the values classify_remote returned do not sum to 1: {wrong}.",
                              "Return the server's answer as it is, decoded as it was encoded.")
    if np.allclose(rows, rows[0]):
        raise CheckFailed(f"classify_remote returned the same probabilities for {len(named)} different images.",
                          "Each call must ask the server about the image it is given: not a variable defined "
                          "outside the function, nor an answer kept from an earlier call.")
    if any(getattr(answer, "dtype", None) == np.float16 for answer in answers):
        # helper session 7: passed here, refused in 01's service
        raise CheckFailed(f"classify_remote returned float16 probabilities: {FLOAT16_LOSS}",
                          "Return the server's answer as it is.")
    for index, ((name, image), row, reference) in enumerate(zip(named, rows, expected)):
        kept = next((earlier for earlier in range(index) if np.allclose(row, rows[earlier], rtol=1e-6)), None)
        if kept is not None and not same_probabilities(row, reference):
            # helper session 6: an answer kept by the image's shape passed (the images always
            # differed in size); now two of them share one.
            size = TWINS if kept == 0 and index == len(named) - 1 else ""
            raise CheckFailed(f"For {name} classify_remote returned the answer it gave for {named[kept][0]}{size}, "
                              "though the model tells the two apart.",
                              "Each call must ask the server about the image it is given: a kept answer cannot "
                              "know which image the check passes in.")
        if not same_probabilities(row, reference):
            raise CheckFailed(f"For {name} the probabilities differ from TinyViT's for that image.",
                              "Send the image's pixels unchanged (uint8, with a batch axis in front) and "
                              "return the server's answer as it is.")
    passed(f"classify_remote answered {len(named)} images the check chose, each like the model")


def _softmax(rows: np.ndarray) -> np.ndarray:
    shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _sent_other_pixels(exchanges: list, named: list) -> None:
    """CheckFailed when the requests recorded carried other pixels than the images given
    (scaled, cast, a constant image): named from what was sent, not from the answers."""
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest

    for (body, status, *_), (name, image) in zip([e for e in exchanges if e[1] == 200], named):
        try:
            sent = NumpyCodec.decode_input(InferenceRequest.model_validate_json(body).inputs[0])
        except Exception:  # not a request the codec reads (another shape of body): nothing to say here
            return
        pixels = np.asarray(sent).reshape(-1)
        if pixels.size == image.size and not np.array_equal(pixels.astype(np.int64), image.reshape(-1)):
            if np.array_equal(np.sort(pixels.astype(np.int64)), np.sort(image.reshape(-1))):
                # helper session 6: "(values 0 to 218; the image's 0 to 218)" read as no difference
                how = "the same values in another order: the image mirrored, turned or its colours swapped"
            else:
                how = (f"values {pixels.min():.3g} to {pixels.max():.3g}; the image's {image.min()} to "
                       f"{image.max()}")
            raise CheckFailed(f"For {name} the request carried other pixels than the image classify_remote was "
                              f"given ({how}).",
                              "Send the image's pixels as they are: the service does its own preprocessing.")


# An address with its port typed by hand: the port is what another server (grading's free ports)
# does not have. The host alone is no mistake: every lab server listens on 127.0.0.1 (helper
# session 9: a port read from the server, with the host written, was refused).
WRITTEN_ADDRESS = re.compile(r"(localhost|127\.0\.0\.1|0\.0\.0\.0):\d+|:80[0-9]{2}\b")


def _refuse_a_written_address(function: Callable) -> None:
    """An address typed into the code works where the server got the default ports and
    fails where it did not (in grading, or beside another notebook's server): refuse it here,
    where the student can still fix it."""
    import inspect

    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return
    written = next((found for text in _strings_in_use(source) if (found := WRITTEN_ADDRESS.search(text))), None)
    kept = _address_kept_in_a_name(function)
    if written:
        where = f"has the address {written.group(0)!r} written into it"
    elif kept:
        where = (f"reads the address {kept[1]!r} from {kept[0]}, which a cell of your notebook sets to text "
                 "written by hand")
    else:
        return
    raise CheckFailed(f"classify_remote {where}. It works while this server has that port, and fails where "
                      "it gets another: when your notebook is graded, or when a second notebook's server "
                      "holds the port.",
                      "The server object knows the address it really got.")


def _strings_in_use(source: str) -> list[str]:
    """The text constants of a function's code that it uses: not its docstring, its comments,
    or a comparison's other side (``url.endswith(":8080")`` checks an address, it does not
    send to it)."""
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return ["\n".join(line.split("#", 1)[0] for line in source.splitlines())]
    ignored = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            ignored.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.Compare) or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                                             and node.func.attr in ("endswith", "startswith")):
            ignored.update(id(inner) for inner in ast.walk(node) if isinstance(inner, ast.Constant))
        # Text the function shows rather than sends to: an assert, a print, an error it raises
        # (helper session 9: "the server on localhost answered ..." was taken for an address).
        if isinstance(node, (ast.Assert, ast.Raise)) or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                                                          and node.func.id == "print"):
            ignored.update(id(inner) for inner in ast.walk(node) if isinstance(inner, (ast.Constant, ast.JoinedStr)))
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in ignored] + \
        [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) and id(node) not in ignored]


def _address_kept_in_a_name(function: Callable) -> tuple[str, str] | None:
    """(name, address) of a module-level name the function reads that a cell of this
    notebook assigned an address typed by hand (``URL = "http://127.0.0.1:8080/..."``); a
    name computed from the server (``URL = server.infer_url``) is fine. Read from the
    kernel's input history, which the notebook has at home and in grading alike."""
    try:
        from IPython import get_ipython

        history = (get_ipython().user_ns.get("In") or []) if get_ipython() is not None else []
    except ImportError:
        return None
    names = set(function.__code__.co_names)
    for constant in function.__code__.co_consts:  # names read by nested functions
        names |= set(getattr(constant, "co_names", ()))
    for name in sorted(names):
        value = function.__globals__.get(name)
        if not isinstance(value, str) or not WRITTEN_ADDRESS.search(value):
            continue
        # The name's last assignment only: a cell run since may have set it from the server
        # (helper session 9: a fixed URL stayed refused until the kernel restarted).
        assigned = re.compile(rf"^\s*{re.escape(name)}\s*=(.*)$", re.M)
        last = next((found[-1] for cell in reversed(history) if isinstance(cell, str)
                     and (found := assigned.findall(cell))), "")
        literal = re.match(r"\s*[fr]?[\"']([^\"'\n]*)", last)  # text typed, not computed
        if literal and WRITTEN_ADDRESS.search(literal.group(1)):
            return name, value
    return None


def _requests_served() -> float:
    """Inference requests (answered or refused) the servers this kernel runs have taken, over
    REST and gRPC alike (MLServer's own counters on /metrics)."""
    from labkit.measure import metrics
    from labkit.serving import registry

    total = 0.0
    for server in registry.servers():
        try:
            if not server.running:
                continue
            samples = metrics.scrape(server.metrics_url)
        except Exception:  # a server that does not answer counts nothing
            continue
        total += sum(metrics.total(samples, f"model_infer_request_{outcome}_total") for outcome in ("success",
                                                                                                  "failure"))
    return total


# A 404 from the server, whichever client got it: what it means, and the hint.
NOT_FOUND = ("The server answered 404: no such model or address.",
             "POST to server.infer_url (/v2/models/tinyvit/infer).")


def _grpc_diagnosis(error: Exception, what: str) -> CheckFailed | None:
    """A gRPC client's error named by its status (helper session 6: a wrong model name and a
    wrong address were both blamed on a request body no one sent); None for other errors."""
    code = getattr(error, "code", None)
    if not callable(code) or type(error).__module__.split(".")[0] != "grpc":
        return None
    try:
        status = code().name
    except Exception:
        return None
    if status == "NOT_FOUND":
        return CheckFailed(f"{what}\nThe server answered gRPC NOT_FOUND: it serves no model of the name the "
                           "request gives.", "The model's name is the one the server object was started with.")
    if status == "UNAVAILABLE":
        return CheckFailed(f"{what}\nNo server answered at the address the channel was opened to (gRPC "
                           "UNAVAILABLE).", "The server object knows the gRPC address it really got.")
    if status == "INVALID_ARGUMENT":
        return CheckFailed(f"{what}\nThe server refused the request's tensor (gRPC INVALID_ARGUMENT): read its "
                           "message above.", "Send the image's pixels with a batch axis in front, as uint8.")
    return CheckFailed(f"{what}\nThe server answered gRPC {status}: read its message above.",
                       "The traceback is in the server's log (its .log_tail()).")


def _urllib_diagnosis(error: Exception, what: str) -> CheckFailed | None:
    """An HTTP error a client other than ``requests`` raised (urllib's HTTPError): the server
    answered, with that status; None for other errors."""
    import urllib.error

    if not isinstance(error, urllib.error.HTTPError):
        return None
    if error.code == 404:
        return CheckFailed(f"{what}\n{NOT_FOUND[0]}", NOT_FOUND[1])
    return CheckFailed(f"{what}\nThe server answered HTTP {error.code}: read its message above.",
                       "The server's log (its .log_tail()) says why it refused the request.")


def _diagnose(exchanges: list, what: str, reached: bool = False) -> CheckFailed:
    """Name the mistake from the last request the student's code sent and its answer
    (``reached``: a request reached a server by another client than ``requests``)."""
    if not exchanges and reached:
        return CheckFailed(what, "The request reached the server, and the error came with or after its answer: "
                                 "read its message above.")
    if not exchanges:
        return CheckFailed(what, "The error came before any request was sent: read its message above.")
    body, status, answer, content_type = exchanges[-1]
    if status is None:
        return CheckFailed(f"{what}\nThe request was sent and no answer came back ({answer[:200]}).",
                           "Send it to the address the server object gives, and give the answer time to come.")
    if status == 422 and content_type and "json" not in content_type.lower():
        # helper session 8: a text/plain header got the server's pydantic text alone ("Input
        # should be a valid dictionary"), which does not say that the header is why
        return CheckFailed(f"{what}\nThe request said its body is {content_type!r}: MLServer then does not read it "
                           "as JSON, and finds no inference request in it (HTTP 422).",
                           "The header that says what the body is must name the format the body is written in.")
    try:
        sent = json.loads(body) if body else None
    except (ValueError, TypeError):
        sent = None
    if isinstance(sent, str):
        return CheckFailed(f"{what}\nThe body is a JSON string that holds the request's JSON: it was encoded "
                           "twice (model_dump_json() already returns JSON text, and json= encodes its argument "
                           "again).", "Send the JSON text as the body as it is, or give json= the plain dict.")
    if isinstance(sent, dict) and "inputs" not in sent:
        return CheckFailed(f"{what}\nThe body has no \"inputs\" (it has {sorted(sent)[:5]}): an inference "
                           "request lists its input tensors under \"inputs\".",
                           "Send the whole InferenceRequest, not one of its tensors.")
    if status == 404:
        return CheckFailed(f"{what}\n{NOT_FOUND[0]}", NOT_FOUND[1])
    try:
        request_input = (json.loads(body).get("inputs") or [{}])[0]
    except (ValueError, AttributeError, TypeError):
        request_input = None
    if request_input is None:
        return CheckFailed(f"{what}\nThe server answered {status}: the body was not an inference request.",
                           "Send request.model_dump_json() as the body.")
    if request_input.get("name") != INPUT_NAME:
        return CheckFailed(f"{what}\nThe request's input is named {request_input.get('name')!r}.",
                           "The model's metadata (GET server.model_url) names the input the service reads.")
    if len(request_input.get("shape") or []) == 3:
        return CheckFailed(f"{what}\nThe request's shape is {request_input.get('shape')}: one image without the "
                           "batch axis.",
                           "The model's metadata (GET server.model_url) gives the axes the service takes.")
    if request_input.get("datatype") != "UINT8":
        return CheckFailed(f"{what}\nThe request's datatype is {request_input.get('datatype')}.",
                           "The model's metadata gives the datatype the service takes; NumpyCodec reads the "
                           "datatype off the array it encodes.")
    return CheckFailed(f"{what}\nThe server answered {status}: {answer[:300]}",
                       "Read the server's message; it says what it expected.")


@contextlib.contextmanager
def _recording_http(exchanges: list):
    """Record (body, status, text, Content-Type) of every HTTP request sent through ``requests``."""
    import requests

    original = requests.Session.send

    def send(session: requests.Session, prepared: requests.PreparedRequest, **kwargs) -> requests.Response:
        body = prepared.body.decode() if isinstance(prepared.body, bytes) else prepared.body
        content_type = prepared.headers.get("Content-Type")
        try:
            response = original(session, prepared, **kwargs)
        except Exception as error:  # sent, and no answer came (a timeout, a refused connection)
            exchanges.append((body, None, f"{type(error).__name__}: {error}", content_type))
            raise
        exchanges.append((body, response.status_code, response.text if response.status_code != 200 else "",
                          content_type))
        return response

    requests.Session.send = send  # type: ignore[method-assign, assignment]  # deliberate: records each request
    try:
        yield
    finally:
        requests.Session.send = original  # type: ignore[method-assign]  # put back


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


def _draws(server: ModelServer, stage: str) -> np.random.Generator:
    """The generator of a stage's images: seeded by the service's code and the stage's name."""
    import hashlib

    try:
        code = (server.model_dir / _service_file(server)).read_bytes()
    except OSError:
        return np.random.default_rng()
    digest = hashlib.sha256(code + stage.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _one_image_per_request(server: ModelServer, checkpoint: PathLike, by_type: bool = False) -> list[str]:
    # The last image: the first's twin (its size and border), so an answer kept by the request's
    # shape fails here (helper session 8: it passed this stage and the batch's).
    names, images, _ = distinct_images(3, checkpoint, twin=True, rng=_draws(server, "one image per request"))
    answers = [ask_top5(server, pixels_request([image]), name, by_type) for name, image in zip(names, images)]
    for labels, scores in answers:
        check_shapes(labels, scores, images=1)
    labels, scores = np.concatenate([a[0] for a in answers]), np.concatenate([a[1] for a in answers])
    compare_best_labels(labels, scores, *reference_model(checkpoint).best_labels(images, 6), what="requests", k=5)
    return ["one row of 5 labels and 5 scores per image",
            f"{len(images)} requests with different images: each answered with its image's own top 5, labels and "
            "scores, best first"]


def _one_batch(server: ModelServer, checkpoint: PathLike, by_type: bool = False) -> list[str]:
    _, decoded, files = distinct_images(3, checkpoint, jpeg=True, rng=_draws(server, "a batch"))
    labels, scores = ask_top5(server, files_request(files), "a batch of 3 different JPEG images of different sizes",
                              by_type)
    check_shapes(labels, scores, images=3)
    compare_best_labels(labels, scores, *reference_model(checkpoint).best_labels(decoded, 6), k=5)
    return ["a batch of 3 images of different sizes gets 3 correct rows, labels and scores"]


_STAGES = {"one image per request": _one_image_per_request, "a batch of images in one request": _one_batch}


def _wrong_at_an_earlier_stage(server: ModelServer, checkpoint: PathLike, stages: int) -> bool | None:
    """Whether the service gives a wrong answer, or an error, at one of the first ``stages``
    stages after the first it passes: True (then this check passes, saying where it is
    counted); False when it passes them all; None when it passes them with its outputs read by
    their types (their names are counted by the first stage). A service that fails the first
    stage without an answer to judge (no server, an error on every request) fails this check
    too: raised."""
    by_type = False
    for index, (what, stage) in enumerate(list(_STAGES.items())[:stages]):
        try:
            try:
                stage(server, checkpoint, by_type)
            except CheckFailed as failure:
                if failure.kind != "output names" or by_type:
                    raise
                by_type = True  # the first stage counts the names; grade what the outputs carry
                stage(server, checkpoint, by_type)
        except CheckFailed as failure:
            if not failure.kind and index == 0 or failure.kind == "output names":
                raise  # no right answer at all (an error on every request, no outputs to read): nothing to spare
            passed(f"not charged here: with {what} your service already goes wrong, and the check of "
                   f"{what} counts that mistake (it names it). Once that check passes, this one grades what it "
                   "adds.")
            return True
    if by_type:
        passed("your outputs read by their types (the labels are text, the scores numbers): their names are "
               "counted by the check of one image per request")
        return None
    return False


def _say_the_batching_wait(server: ModelServer) -> None:
    """A server that holds a lone request for seconds (max_batch_time, a unit mistake its
    settings check names) makes each request of a check wait that long: said before the
    wait, not left to a silent cell (helper session 5: about 2 minutes for 03's checks)."""
    try:
        scaling = server.scaling
    except Exception:  # a folder whose settings do not read: its own check says so
        return
    if scaling.get("max_batch_size", 0) > 1 and scaling.get("max_batch_time", 0) >= 1:
        print(f"This server holds each request up to {scaling['max_batch_time']:g} s for others to join a batch "
              "(max_batch_time): each request of this check waits that long.")


def top5_service(server: ModelServer | PathLike, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 03, one image per request: three requests with different images to the same
    server (the third of the first's size and border), each answered with 5 valid labels and
    their scores, ordered, as the model says (an answer that ignores its image, or repeats an
    earlier one, fails). ``server``: the
    student's server, or their folder (see :func:`service_server`)."""
    server = service_server(server)
    _not_stale(server)
    _say_the_batching_wait(server)
    for line in _one_image_per_request(server, checkpoint):
        passed(line)


def top5_batch(server: ModelServer | PathLike, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 03, a batch: 3 different JPEG images of different sizes in one request,
    3 right rows, labels and scores (a first-row-only or a constant answer fails). A service
    that answers one image per request wrong is charged by :func:`top5_service` only."""
    server = service_server(server)
    _not_stale(server)
    _say_the_batching_wait(server)
    earlier = _wrong_at_an_earlier_stage(server, checkpoint, stages=1)
    if earlier:
        return
    for line in _one_batch(server, checkpoint, by_type=earlier is None):
        passed(line)


def top5_under_batching(server: ModelServer | PathLike, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT,
                        callers: int = 8) -> None:
    """Load the service again with adaptive batching (same process, MLServer's model
    repository API) and send two rounds of concurrent requests of 1 or 2 images, each round
    with images drawn for it: every caller must get exactly its own rows, labels and scores
    (a service that answers every round as it answered the first, one merged batch, fails
    the second). A service already wrong without batching is charged by the checks of those
    stages only. Notebook 03's self-check; the hidden check runs it again when grading."""
    from concurrent.futures import ThreadPoolExecutor

    server = service_server(server)
    _not_stale(server)
    earlier = _wrong_at_an_earlier_stage(server, checkpoint, stages=2)
    if earlier:
        return
    by_type = earlier is None
    # helper session 10: 11-17 s with no word before the verdict
    print(f"Loading {server.name} again with adaptive batching, then 2 rounds of {callers} callers at once "
          "(10-20 s)...", flush=True)
    server.reload(max_batch_size=callers, max_batch_time=0.1)
    groups = [[index % 4] if index % 2 == 0 else [index % 4, (index + 1) % 4] for index in range(callers)]
    for round_ in range(2):
        _, images, files = distinct_images(4, checkpoint, jpeg=True, rng=_draws(server, f"batching round {round_}"))
        with ThreadPoolExecutor(len(groups)) as pool:
            answers = list(pool.map(lambda group: ask_top5(server, files_request([files[i] for i in group]),
                                                           "concurrent requests", by_type), groups))
        expected_labels, expected_scores = reference_model(checkpoint).best_labels(images, 6)
        for group, (labels, scores) in zip(groups, answers):
            check_shapes(labels, scores, images=len(group))
            compare_best_labels(labels, scores, expected_labels[group], expected_scores[group],
                                what="rows of a caller's answer under adaptive batching", k=5)
    passed(f"2 rounds of {len(groups)} concurrent callers under adaptive batching, each caller got its own "
           "rows, labels and scores")


def _not_stale(server: ModelServer) -> None:
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
                       f"Look for a loop that never ends in {_service_file(server)}; {_log_of(server)} shows where "
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
        raise CheckFailed(f"The server did not answer {what} ({type(error).__name__}): it is not running.",
                          "Run the cell that starts it and read what it printed.") from None
    except InferenceFailed as error:
        cause = last_exception(server.log) if error.status >= 500 else ""
        if re.search(r"Cannot handle this data type: \(1, 1\), [<|>]?[USO]", f"{error.message} {cause}"):
            # helper session 8: a service that decodes the request itself handed PIL the JPEG bytes
            # as text; PIL's words about a NumPy type did not say so
            cause += (" (PIL was given text or bytes, not pixels: the images of this request are encoded "
                      "files, JPEG bytes, which predict() must decode into pixels before it makes images of them)")
        cause = f"\nThe server log ends with: {cause}" if cause else ""
        raise CheckFailed(f"The service answered {what} with HTTP {error.status}: {error.message}{cause}",
                          f"The traceback is in {_log_of(server)}; fix {_service_file(server)}, "
                          "then start the server again.") from None
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


def runtime_top_k(server: ModelServer | PathLike, name: str = "top3", k: int = 3,
                  checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 04: a model served by the timm runtime from model-settings.json alone, under
    ``name``, answering the ``k`` best labels of each image of a batch of different images.
    ``server``: the student's server, or their folder, whose server this kernel runs."""
    if not isinstance(server, ModelServer):
        folder = Path(server).resolve()
        running = running_server(folder)
        if running is None:
            # The configuration is the whole exercise: its file says what is wrong, if it can.
            read_model_settings(folder)
            raise CheckFailed(f"No server of {folder.name}/ runs in this kernel: its start cell failed or has not "
                              "run.", "Run the cell that starts it and read what it printed: MLServer names the "
                              "setting it could not use.")
        server = running
    _not_stale(server)
    if server.name != name:
        raise CheckFailed(f"The server serves a model named {server.name!r}; the exercise asks for {name!r}.",
                          "Clients address a model by the \"name\" in model-settings.json.")
    # The file as MLServer reads it, and a uri inside the folder: it must grade the same elsewhere.
    read_model_settings(server.model_dir)
    _, images, files = distinct_images(3, checkpoint, jpeg=True)  # images: what the server decodes
    labels, scores = ask_top5(server, files_request(files), "3 different JPEG images")
    if labels.shape[1:] != (k,) and labels.shape[:1] == (3,):
        raise CheckFailed(f"The model answers {labels.shape[1]} labels per image; the exercise asks for {k}.",
                          "The timm runtime reads how many labels to return from parameters.extra.top_k.")
    check_shapes(labels, scores, images=3, k=k)
    try:
        compare_best_labels(labels, scores, *reference_model(checkpoint).best_labels(images, k + 1), k=k)
    except CheckFailed as failure:
        raise CheckFailed(f"{failure.what} (The runtime computes what its configuration says.)",
                          "parameters.uri must name the lab's checkpoint (tinyvit.safetensors in the folder) "
                          "and parameters.extra.model the TinyViT architecture.") from None
    passed(f"model {name!r}, served by configuration alone, answers the {k} best labels of each image")




def scaling_turned_on(server: ModelServer, concurrency: int = 8) -> None:
    """Notebook 05: the student's server runs at least two parallel workers and, under
    ``concurrency`` callers, forms batches: both read off the running server (its log and its
    own batch-size metric), not off the files."""
    from labkit.measure.panel import measure

    _not_stale(server)
    settings = read_json(server.model_dir / "settings.json")
    misplaced = [key for key in BATCHING_KEYS if key in settings]
    workers = server.log.count(MODEL_LOAD_LINE)
    if workers < 2:
        raise CheckFailed(f"The server runs the model in {workers} process(es): one at a time, whatever the "
                          "load.",
                          "Parallel workers are a server setting; after changing it, start the server again.")
    try:
        row = measure(server, concurrency, duration=3)
    except OSError as error:  # requests' ConnectionError is one: the metrics endpoint is off or moved
        raise CheckFailed(f"The server's metrics ({server.metrics_url}) did not answer ({type(error).__name__}): the "
                          f"check reads the batch sizes there, from the server's own {BATCH_SIZE_METRIC} metric.",
                          "Leave the metrics settings out of settings.json, and start the server again.") from None
    if row["errors"]:
        raise CheckFailed(f"{row['errors']} of {row['requests']} requests under {concurrency} concurrent callers "
                          "failed.", f"The tracebacks are in {_log_of(server)}.")
    if not row["avg_batch"] > 1.2:
        what = (f"Under {concurrency} concurrent callers the model got {row['avg_batch']:.1f} image(s) per "
                f"predict() call (the server's own {BATCH_SIZE_METRIC} metric): no batches formed.")
        if misplaced:
            raise CheckFailed(f"{what} settings.json sets {misplaced}, and MLServer reads adaptive batching per "
                              "model, from model-settings.json only: in settings.json it ignores them, so "
                              "nothing changed.",
                              "Move them to model-settings.json, restart the server, run the check again.")
        raise CheckFailed(what, "Adaptive batching is a model setting, and needs a batch size above 1 and a wait "
                                "long enough for requests to meet.")
    passed(f"{workers} parallel workers, and {row['avg_batch']:.1f} images per predict() call on average "
           f"under {concurrency} concurrent callers")


def custom_metric(server: ModelServer, metric: str = CONFIDENCE_METRIC,
                  checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 07: the service logs ``metric`` once per image it serves, each value that
    image's top-1 probability. Batches of different sizes and different images: a value
    logged once per call, a constant, or one image's value for all fails."""
    from labkit.measure import metrics

    _not_stale(server)
    _, decoded_images, files = distinct_images(4, checkpoint, jpeg=True)
    # 2, 1 and 4 images: one value per call (3), one short of each batch (4) and one too many (10) all
    # differ from the 7 images (helper session 10: with 2, 1 and 3, a call's first image skipped gave 3).
    batches = [[files[0], files[1]], [files[2]], [files[3], files[0], files[1], files[2]]]
    before = _scrape(server)
    for batch in batches:
        _ask_probabilities(server, batch)
    after = _scrape(server)
    images = sum(len(batch) for batch in batches)
    count = metrics.total(after, f"{metric}_count") - metrics.total(before, f"{metric}_count")
    if count <= 0:
        others = sorted(name for name in metrics.custom_histograms(server.metrics_url) if name != metric
                        and metrics.total(after, f"{name}_count") > metrics.total(before, f"{name}_count"))
        if others:
            raise CheckFailed(f"{metric} did not appear on /metrics after {len(batches)} requests; your service "
                              f"logged {others} instead.",
                              "The metric's name is the keyword you give mlserver.log: use the name the exercise "
                              "gives.")
        workers = server.scaling["parallel_workers"]
        raise CheckFailed(f"{metric} did not appear on /metrics after {len(batches)} requests.",
                          "Log it with mlserver.log from predict(), once per image."
                          if workers else "Log it with mlserver.log from predict(), and run the server with "
                          "parallel_workers > 0 (MLServer issue #1151).")
    if count != images:
        sizes = [len(batch) for batch in batches]
        raise CheckFailed(f"{metric} got {count:g} observations for {images} images sent in {len(batches)} "
                          f"requests of {', '.join(map(str, sizes[:-1]))} and {sizes[-1]} images.",
                          "Log one value per image of the batch (per row of the probabilities), not one per "
                          "predict() call." if count == len(batches) else
                          "Log one value per image of the batch: one per row of the probabilities.")
    top1 = reference_model(checkpoint).probabilities(decoded_images).max(axis=1)
    expected = np.mean([top1[files.index(data)] for batch in batches for data in batch])
    mean = metrics.histogram_mean(before, after, metric)
    if np.isclose(mean, 100 * expected, rtol=1e-3, atol=0):
        raise CheckFailed(f"The mean of the {images} values of {metric} is {mean:.6g}: the images' top-1 "
                          "probabilities in percent (100 times each).",
                          "A probability is a fraction of 1, as the model gives it.")
    if not np.isclose(mean, expected, rtol=1e-3, atol=0):
        raise CheckFailed(f"The mean of the {images} values of {metric} is {mean:.6g}, which is not the mean "
                          "top-1 probability of the images sent.",
                          "Each image's own top-1 probability, from its own row.")
    passed(f"{metric}: one observation per image ({images}) on /metrics, their mean the images' top-1 "
           "probability")
    # /metrics keeps a count, a sum and buckets too coarse for these probabilities: each value
    # is compared in this process, where every call of mlserver.log is seen.
    metric_file(server.model_dir, metric, checkpoint=checkpoint)


def _scrape(server: ModelServer) -> pd.DataFrame:
    from labkit.measure import metrics

    try:
        return metrics.scrape(server.metrics_url)
    except requests_errors() as error:
        raise CheckFailed(f"The server's /metrics did not answer ({type(error).__name__}): it is not running.",
                          "Run the cell that starts it and read what it printed.") from None


def _ask_probabilities(server: ModelServer, files: list[bytes]) -> None:
    from labkit.client import infer

    try:
        infer(server.infer_url, files_request(files))
    except requests_errors() as error:
        raise CheckFailed(f"The server did not answer ({type(error).__name__}): it is not running.",
                          "Run the cell that starts it and read what it printed.") from None
    except InferenceFailed as error:
        raise CheckFailed(f"The service answered HTTP {error.status}: {error.message}",
                          f"The traceback is in {_log_of(server)}; fix {_service_file(server)}, "
                          "then start the server again.") from None


def requests_errors() -> tuple:
    """What ``requests`` raises when nothing listens (a server that failed to start or died)."""
    import requests

    return (requests.ConnectionError, requests.Timeout)


def _log_of(server: ModelServer) -> str:
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


def _service_file(server: ModelServer) -> str:
    """The Python file the server's model settings name (``confidence.py`` in 07)."""
    try:
        implementation = server.model_settings["implementation"]
    except (KeyError, TypeError):
        return "your service's file"
    return f"{implementation.rpartition('.')[0]}.py"
