"""Notebook 02: the student's ``classify_remote``, run against a live server.

The check sends drawn images through the student's function, records every request it makes
(over ``requests``, ``urllib`` or gRPC), compares the probabilities row by row with the
reference, and names what the function did: an address typed by hand, a stored answer, other
pixels sent, an error answer read as a result.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from typing import TYPE_CHECKING, Callable

import numpy as np

from labkit.checks.feedback import (FLOAT16_LOSS, CheckFailed, TWINS, distinct_images, how_rounded, passed,
                                    same_probabilities, why_not_probabilities)
from labkit.contract import INPUT_NAME
from labkit.model import weights
from labkit.model.reference import reference_model
from labkit.paths import PathLike

if TYPE_CHECKING:
    import requests


def _unchanged(given: np.ndarray, image: np.ndarray, name: str) -> None:
    """The caller's array as it was before the call (helper session 17: a function that set
    ``image.shape`` to add the batch axis, or swapped its channels in place, passed here, and the
    notebook's next cells then met a changed image)."""
    what = (f"the shape of the array it was given, from {image.shape} to {given.shape}" if given.shape != image.shape
            else "the pixels of the array it was given" if not np.array_equal(given, image) else "")
    if what:
        raise CheckFailed(f"classify_remote({name}) changed {what}: the caller's image is not the one it had.",
                          "A function that sends an image leaves its argument as it found it.")


def remote_classifier(classify_remote: Callable[[np.ndarray], np.ndarray],
                      checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 02: ``classify_remote(image)`` sends one ``[H, W, 3]`` image to the server
    and returns its 21841 probabilities. Called with images the student did not choose;
    what it sent is recorded to name a mistake.

    Args:
        classify_remote: the student's function, called with images drawn for this call.
        checkpoint: the weights of the reference answers.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
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
            given = image.copy()
            try:
                answers.append(classify_remote(given))
                _unchanged(given, image, name)
            except CheckFailed:
                raise
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
    # helper session 12: an error caught and a made-up answer returned was named by that answer
    # ("a second softmax", "read as whole numbers?"); the server's refusal is the mistake.
    refused = next((index for index, exchange in enumerate(exchanges) if exchange[1] != 200), None)
    hidden = None if refused is None else _diagnose(
        exchanges[:refused + 1], f"classify_remote returned values although the server answered "
        f"{exchanges[refused][1] or 'nothing'} to a request it sent: the error was caught and hidden.")
    read_rows = []
    for (name, _), answer in zip(named, answers):
        try:
            row = np.asarray(answer, dtype=np.float64)
        except (TypeError, ValueError):
            if hidden:
                raise hidden from None
            raise CheckFailed(f"For {name} classify_remote returned a {type(answer).__name__}, not an array of "
                              "probabilities.",
                              "Return the decoded output, a NumPy array, not the response or its JSON.") from None
        # helper session 8: a column [21841, 1] passed (the values counted, not their shape)
        if row.size != expected.shape[1] or row.shape not in ((expected.shape[1],), (1, expected.shape[1])):
            if hidden:
                raise hidden
            raise CheckFailed(f"For {name} classify_remote returned shape {list(row.shape)}; expected "
                              f"{expected.shape[1]} probabilities (shape [21841] or [1, 21841]).",
                              "Decode the answer's first output with the codec that encoded the input; for "
                              "one image it has one row.")
        read_rows.append(row.reshape(-1))
    rows = np.stack(read_rows)
    if hidden and not same_probabilities(rows, expected):
        raise hidden
    _sent_other_pixels(exchanges, named)
    if np.allclose(rows, _softmax(expected), rtol=1e-3, atol=1e-7):
        raise CheckFailed("classify_remote returned a softmax of the server's probabilities: the server already "
                          "answers probabilities, and a second softmax flattens them (every value near 1/21841).",
                          "Return the server's answer as it is.")
    if same_probabilities(rows / 100, expected):
        raise CheckFailed("classify_remote returned percentages (each row sums to 100), not the server's "
                          "probabilities.", "Return the server's answer as it is.")
    for (name, _), row, reference in zip(named, rows, expected):
        wrong = why_not_probabilities(row, reference)
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
        rounded = None if same_probabilities(row, reference) else how_rounded(row, reference)
        if rounded:  # helper session 14: named as differing
            raise CheckFailed(f"For {name} classify_remote returned the server's probabilities {rounded}, which "
                              "most of TinyViT's 21,841 probabilities (about 1/21841 each) do not survive.",
                              "Return the server's answer as it is.")
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
    shape = request_input.get("shape") or []
    if len(shape) == 3 and shape[-1] not in (3, 4) and shape[0] == 1:
        # helper session 12: a grayscale image [1, H, W] was told it lacked the batch axis
        return CheckFailed(f"{what}\nThe request's shape is {shape}: one image with no colour axis (grayscale?).",
                           "The model's metadata (GET server.model_url) gives the axes the service takes.")
    if len(shape) == 3:
        return CheckFailed(f"{what}\nThe request's shape is {shape}: one image without the batch axis.",
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

