"""Notebook 01: the inputs and outputs a student declares in ``model-settings.json``, read
back from their running server (``GET /v2/models/<name>``) and compared with what their
service really accepts and answers.

MLServer 1.7.1 enforces none of a declaration (measured in notebook 01: a request whose
datatype or shape contradicts it reaches ``predict()``, and the answer keeps the name the
code gives it), so a declaration is only as good as its agreement with the code. The check
is the client a declaration is for: it builds requests from the metadata alone, for two
drawn images of different sizes, and compares each answer's outputs with the declared ones.
A refused request names the declared field the service does not accept, found by sending
the same image again with that one field as the service takes it. MLServer does check a
declaration's form when it loads the model (a datatype it does not know fails the load).
"""

from __future__ import annotations

import base64
import difflib
import json
import re
from pathlib import Path

import numpy as np
import requests

from labkit.checks.feedback import CheckFailed, distinct_images, passed
from labkit.checks.students_server import not_stale, requests_errors, service_server
from labkit.checks.json_file import read_json
from labkit.client import encode_jpeg
from labkit.model import weights
from labkit.paths import PathLike
from labkit.serving.server import ModelServer, running_server

# The Open Inference Protocol's tensor datatypes, and the NumPy type of the numeric ones.
NUMERIC = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
           "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
           "FP32": np.float32, "FP64": np.float64}
DATATYPES = (*NUMERIC, "BYTES")


def declared_metadata(where: ModelServer | PathLike, declaration: dict | None = None,
                      checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """The declared inputs and outputs, as ``GET /v2/models/<name>`` returns them, describe
    the service: a request built from them alone succeeds for two drawn images of different
    sizes, and each answer has the declared outputs (name, datatype, shape; ``-1`` matches
    any length).

    Args:
        where: the student's server, or their folder, whose server this kernel runs.
        declaration: the ``{"inputs": [...], "outputs": [...]}`` the student wrote (notebook
            01's cell), or None to read it off the folder's ``model-settings.json``. When the
            running server does not serve it (its start failed, on a mistake of Exercise 1's
            say), the check starts the folder's service with it and the name and class
            Exercise 1 gives: a mistake costs its own exercise only.
        checkpoint: the weights of the reference answers.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    server = _server_of(where, declaration)
    not_stale(server)
    try:
        metadata = requests.get(server.model_url, timeout=30).json()
    except requests_errors() as error:
        raise CheckFailed(f"The server did not answer GET /v2/models/{server.name} ({type(error).__name__}).",
                          "Run the cell that starts it and read what it printed.") from None
    inputs, outputs = metadata.get("inputs") or [], metadata.get("outputs") or []
    _check_declared({"inputs": inputs, "outputs": outputs}, f"GET /v2/models/{server.name}")
    if len(inputs) > 1:  # notebook 01's predict() takes one tensor
        raise CheckFailed(f"GET /v2/models/{server.name} lists {len(inputs)} inputs "
                          f"({', '.join(str(t.get('name')) for t in inputs)}); your predict() takes one tensor.",
                          "Declare the inputs predict() receives, no more.")
    names, images, _ = distinct_images(2, checkpoint)
    _no_size_fixed_that_varies(server, inputs, names[0], images[0])
    for name, image in zip(names, images):
        body = {"inputs": [_tensor_for(f"inputs[{index}]", tensor, image) for index, tensor in enumerate(inputs)]}
        answer = requests.post(server.infer_url, json=body, timeout=120)
        if not answer.ok:
            field = _refused_field(server, inputs, image, _message(answer))
            if field is None:
                # Refused even as notebook 01's service takes an image: the service fails, not the
                # declaration (helper session 5: this was blamed on the declaration). A declaration
                # is checked against a service that answers, as 03's checks grade answers.
                raise CheckFailed(f"Your service refused {name} even sent as notebook 01's service takes an image "
                                  f"(uint8 pixels, height x width x 3): HTTP {answer.status_code} "
                                  f"{_message(answer)}. The error is in the service, which first-service-check "
                                  "names; the declaration is checked once the service answers.",
                                  f"Fix {FIRST_SERVICE.split('.')[0]}.py (Exercise 3), start the server again, then "
                                  "run this check again.")
            raise CheckFailed(f"A request built from the metadata alone ({_describe(inputs)}), for {name} of "
                              f"{image.shape[0]}x{image.shape[1]} pixels, was refused: HTTP {answer.status_code} "
                              f"{_message(answer)}. {field}",
                              "Declare what your predict() takes, as a client has to send it: the input's name, "
                              "the datatype of its values, and its axes (-1 for one whose length varies).")
        _compare_outputs(outputs, answer.json().get("outputs") or [])
    passed(f"GET /v2/models/{server.name}: {_describe(inputs)} in, {_describe(outputs)} out")
    passed(f"requests built from that metadata alone, for {len(images)} images of different sizes, are "
           "answered with the declared outputs")


FIRST_SERVICE = "serve-model.TinyViTModel"  # notebook 01's class


def _check_declared(declaration: object, where: str) -> None:
    """Both parts present, each tensor well formed; CheckFailed names the field."""
    if not isinstance(declaration, dict):
        raise CheckFailed(f"The declaration is {type(declaration).__name__}, not a dict of \"inputs\" and "
                          "\"outputs\".", "Give both fields, each a list of tensors.")
    for part in ("inputs", "outputs"):
        tensors = declaration.get(part)
        near = difflib.get_close_matches(part, [str(key) for key in declaration if key not in ("inputs", "outputs")],
                                         n=1, cutoff=0.75)
        if not tensors and near:
            # helper session 17: "input" was told "lists no inputs", and the hint named the key
            raise CheckFailed(f"The declaration's {near[0]!r}: MLServer has no such field and ignores it, so {where} "
                              f"lists no {part}.", "MLServer reads the fields of a model's metadata by their exact "
                              "names, as the Open Inference Protocol spells them.")
        if not tensors:
            raise CheckFailed(f"{where} lists no {part}: a client reading the metadata does not learn what to "
                              "send or what comes back.",
                              f"Declare \"{part}\", a list of tensors (name, datatype, shape), and start the "
                              "server again so that it reads it.")
        if not isinstance(tensors, list):
            raise CheckFailed(f"\"{part}\" is a {type(tensors).__name__}; MLServer takes a list of tensors.",
                              "Put the tensor's description in square brackets, even when there is one.")
        for index, tensor in enumerate(tensors):
            _check_form(f"{part}[{index}]", tensor)


def _tensors(declaration: dict, part: str) -> list:
    return [(t.get("name"), t.get("datatype"), t.get("shape")) for t in declaration.get(part) or []]


def _server_of(where: ModelServer | PathLike, declaration: dict | None) -> ModelServer:
    """The student's running server when it serves the declaration; else one this check
    starts from the folder's service with it and the name and class Exercise 1 gives."""
    if isinstance(where, ModelServer):
        return where
    folder = Path(where).resolve()
    if declaration is not None:
        try:  # as the cell writes it into model-settings.json: a tuple becomes a list
            declaration = json.loads(json.dumps(declaration))
            for part in ("inputs", "outputs"):
                tensors = declaration.get(part) if isinstance(declaration, dict) else None
                for tensor in tensors if isinstance(tensors, list) else []:
                    if isinstance(tensor, dict) and "shape" in tensor:
                        tensor["shape"] = as_mlserver_reads(tensor["shape"])
        except (TypeError, ValueError) as error:
            raise CheckFailed(f"The declaration cannot be written as JSON: {error}.",
                              "Use plain Python values: strings, whole numbers, lists and dicts.") from None
    if declaration is None:
        # The file is the declaration. A malformed one is named from the file: MLServer
        # refuses to load it (a datatype it does not know, say), so no server of it can run.
        content = read_json(folder / "model-settings.json")
        declaration = {part: content[part] for part in ("inputs", "outputs") if part in content}
    _check_declared(declaration, "The declaration")
    declared = {part: declaration[part] for part in ("inputs", "outputs")}
    server = running_server(folder)
    if server is not None:
        try:
            served = requests.get(server.model_url, timeout=30).json()
        except (*requests_errors(), ValueError):
            served = {}
        if all(_tensors(served, part) == _tensors(declared, part) for part in declared):
            return server
        print(f"The server this kernel runs for {folder.name}/ does not serve this declaration (was it started "
              "again after the cell that writes it?).")
    return service_server(folder, FIRST_SERVICE, declared=declared, own_only=True)


def _check_form(field: str, tensor: object) -> None:
    if not isinstance(tensor, dict):
        raise CheckFailed(f"{field} is {tensor!r}, not a tensor's description.",
                          "Each tensor is an object with \"name\", \"datatype\" and \"shape\".")
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), as_mlserver_reads(tensor.get("shape"))
    if not isinstance(name, str) or not name:
        raise CheckFailed(f"{field} has no \"name\".", "A client addresses a tensor by its name.")
    if datatype not in DATATYPES:
        raise CheckFailed(f"{field}.datatype is {datatype!r}, which is not an Open Inference Protocol datatype.",
                          f"Datatypes are written in capitals: one of {', '.join(DATATYPES)}.")
    if not (isinstance(shape, list) and shape and all(isinstance(n, int) and not isinstance(n, bool)
                                                       and (n == -1 or n > 0) for n in shape)):
        raise CheckFailed(f"{field}.shape is {shape!r}: a shape is a list of axis lengths, -1 for an axis whose "
                          "length varies.", "One whole number per axis, -1 where requests differ.")


def as_mlserver_reads(shape: object) -> object:
    """``shape`` as MLServer's own model reads it: axis lengths written as text ("-1") or as whole
    floats (21841.0) are the numbers (helper session 17: refused here, while the server they
    started served the solution's metadata); anything it refuses stays as written."""
    from mlserver.types import MetadataTensor
    from pydantic import ValidationError

    if not isinstance(shape, list) or any(isinstance(length, bool) for length in shape):
        return shape
    try:
        return MetadataTensor(name="x", datatype="FP32", shape=shape).shape
    except ValidationError:
        return shape


def _describe(tensors: list) -> str:
    return ", ".join(f"{t['name']} {t['datatype']} {t['shape']}" for t in tensors)


def _pixels_for(field: str, shape: list, image: np.ndarray) -> np.ndarray:
    """``image`` laid out as ``shape`` says: its height, width and colour axes are the last
    three; fixed lengths are taken as declared (the image resized to them), leading axes of
    -1 get length 1."""
    from PIL import Image

    if len(shape) < 3:
        raise CheckFailed(f"{field}.shape {shape} has {len(shape)} axes: an image has at least three (height, "
                          "width, colour).", "Count the axes of the array your predict() receives.")
    height, width, colours = shape[-3:]
    if colours not in (-1, 3):
        raise CheckFailed(f"{field}.shape {shape} declares {colours} values per pixel, which is not what the "
                          "images your predict() receives have.",
                          "Count the values of one pixel of the images the service takes.")
    if height != -1 or width != -1:
        size = (width if width != -1 else image.shape[1], height if height != -1 else image.shape[0])
        image = np.asarray(Image.fromarray(image).resize(size))
    leading = [1 if n == -1 else n for n in shape[:-3]]
    return np.broadcast_to(image, (*leading, *image.shape)).copy()


def _tensor_for(field: str, tensor: dict, image: np.ndarray, datatype: str | None = None,
                shape: list | None = None) -> dict:
    datatype, shape = datatype or tensor["datatype"], shape or tensor["shape"]
    if datatype == "BYTES":
        data = [base64.b64encode(encode_jpeg(image)).decode()]
        return {"name": tensor["name"], "datatype": "BYTES", "shape": [1], "data": data,
                "parameters": {"content_type": "base64"}}
    pixels: np.ndarray = _pixels_for(field, shape, image).astype(NUMERIC[datatype])
    return {"name": tensor["name"], "datatype": datatype, "shape": list(pixels.shape),
            "data": pixels.ravel().tolist()}


def _message(answer: requests.Response) -> str:
    """MLServer's error text, without the list of the inputs it would have taken (that names
    the answer; the check names the field)."""
    try:
        text = str(answer.json().get("error", ""))[:300]
    except ValueError:
        text = answer.text[:300]
    text = re.sub(r"\.?\s*Available inputs are [^.]*\.?", ".", text)
    return text.rstrip(". ")


def _no_size_fixed_that_varies(server: ModelServer, inputs: list, name: str, image: np.ndarray) -> None:
    """A declared input that fixes the height or width of an image passes requests built
    from it (the check resizes to it), but it does not describe a service that takes any
    size: a client would resize every photo for nothing. Tried with the image at its own
    size, laid out as notebook 01's service takes it."""
    for index, tensor in enumerate(inputs):
        shape = tensor["shape"]
        if tensor["datatype"] == "BYTES" or len(shape) < 3 or shape[-3:-1] == [-1, -1]:
            continue
        field = f"inputs[{index}]"
        others = [_tensor_for(f"inputs[{i}]", t, image) for i, t in enumerate(inputs) if i != index]
        trial = _tensor_for(field, tensor, image, shape=[*shape[:-3], -1, -1, 3])
        body = {"inputs": others[:index] + [trial] + others[index:]}
        if not requests.post(server.infer_url, json=body, timeout=120).ok:
            continue
        looks_like = (" (3 first reads like colour channels first, but the colours are the last axis of the "
                      "pixels your predict() receives)" if shape[-3] == 3 else "")
        raise CheckFailed(f"{field}.shape {shape} fixes an image's height or width{looks_like}, but your service "
                          f"takes any size: it answered {name} of {image.shape[0]}x{image.shape[1]} pixels sent as "
                          "it is. A client reading the metadata would resize every photo for nothing.",
                          "Describe the axes of the one image predict() receives, in their order, with -1 for a "
                          "length that differs from request to request.")


def _refused_field(server: ModelServer, inputs: list, image: np.ndarray, refusal: str) -> str | None:
    """The declared field the service does not accept: the same image sent again with only
    that field as the service takes it (uint8 pixels ``[H, W, 3]``, notebook 01's service)."""
    for index, tensor in enumerate(inputs):
        field = f"inputs[{index}]"
        if f"Input '{tensor['name']}' was not found" in refusal:
            return (f"{field}.name is {tensor['name']!r}, but your predict() reads an input of another name: "
                    "MLServer looks the request's tensors up by name.")
        for key, fixed in (("datatype", {"datatype": "UINT8"}), ("shape", {"shape": [-1, -1, 3]}),
                           ("datatype and shape", {"datatype": "UINT8", "shape": [-1, -1, 3]})):
            others = [_tensor_for(f"inputs[{i}]", t, image) for i, t in enumerate(inputs) if i != index]
            try:
                trial = _tensor_for(field, tensor, image, **fixed)
            except CheckFailed:
                continue
            body = {"inputs": others[:index] + [trial] + others[index:]}
            if requests.post(server.infer_url, json=body, timeout=120).ok:
                return (f"The service accepts that image with another {key} in {field}: the declared "
                        f"{key} ({', '.join(str(tensor[part]) for part in key.split(' and '))}) is not what it "
                        "takes.")
    return None


def _compare_outputs(declared: list, answered: list) -> None:
    if len(answered) != len(declared):
        raise CheckFailed(f"The metadata declares {len(declared)} output(s); the service answers {len(answered)}.",
                          "Send one request and read the outputs of its answer: the declaration describes them.")
    for index, (tensor, output) in enumerate(zip(declared, answered)):
        field = f"outputs[{index}]"
        if output["name"] != tensor["name"]:
            raise CheckFailed(f"{field}.name is {tensor['name']!r}, but the service's answer has no output of that "
                              "name: a client looking for it finds nothing (MLServer does not rename an answer to "
                              "match the declaration).",
                              "Send one request and read the names of its outputs: the declaration describes "
                              "what the code answers.")
        if output["datatype"] != tensor["datatype"]:
            raise CheckFailed(f"{field}.datatype is {tensor['datatype']!r}, but the service's answer "
                              f"{output['name']!r} carries another datatype.",
                              "Send one request and read the datatype of its output.")
        shape = output["shape"]
        if len(shape) != len(tensor["shape"]) or any(d not in (-1, n) for d, n in zip(tensor["shape"], shape)):
            raise CheckFailed(f"{field}.shape is {tensor['shape']}, but the service's answer {output['name']!r} "
                              "has another number of axes, or another length on an axis the declaration fixes.",
                              "One length per axis of the answer, -1 where it varies with the request.")
