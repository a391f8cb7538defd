"""The two settings files as MLServer reads them, and what it does not say about them.

MLServer reads ``settings.json`` into ``mlserver.settings.Settings`` and ``model-settings.json``
into ``ModelSettings`` (its ``parameters`` into ``ModelParameters``, its ``inputs`` and
``outputs`` into ``MetadataTensor``). A value of the wrong type refuses the file: for a model,
MLServer logs "Failed load model settings" and keeps running with no model. A key it does not
know it ignores in silence (pydantic's ``extra="ignore"``, and ``extra="allow"`` under
``parameters``): ``"paralel_workers": 3`` leaves one worker, batching keys nested under
``parameters`` leave batching off. :func:`problems` finds both, in the student's terms: each
ignored key with the known key it most likely meant, or the file and level where it belongs.

Light: MLServer's settings models only (pydantic), no runtime.
"""

from __future__ import annotations

import difflib
import json
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic import BaseModel

Kind = Literal["settings", "model-settings"]
FILES: dict[Kind, str] = {"settings": "settings.json", "model-settings": "model-settings.json"}
# Free-form objects MLServer hands to the runtime as they are: their keys are the runtime's.
FREE_FORM = ("extra",)


def problems(content: dict, kind: Kind) -> list[str]:
    """What MLServer would refuse in ``content`` (the file's JSON object) and every key it
    would ignore, one sentence each, in the order of the file; ``[]`` when MLServer takes it all."""
    return refused(content, kind) + ignored_keys(content, kind)


def read(content: dict, kind: Kind) -> Any:
    """``content`` as MLServer reads it (its ``Settings`` or ``ModelSettings``); ValidationError
    where :func:`refused` has sentences."""
    return _model(kind).model_validate(dict(content))


def refused(content: dict, kind: Kind) -> list[str]:
    """The values MLServer's own model refuses, as ``<where> is <value>: <why>``."""
    from pydantic import ValidationError

    model = _model(kind)
    try:
        # model_validate, not the constructor: no MLSERVER_* environment variables mixed in.
        model.model_validate(dict(content))
    except ValidationError as error:
        sentences = []
        for detail in error.errors(include_url=False):
            where = _where(detail["loc"])
            value = detail.get("input")
            if detail["type"] == "missing":
                sentences.append(f"{where} is missing: MLServer needs it.")
                continue
            allowed = (detail.get("ctx") or {}).get("expected")
            reason = f"MLServer takes only {allowed}" if allowed else detail["msg"][:1].lower() + detail["msg"][1:]
            sentences.append(f"{where} is {value!r}: {reason}.")
        return sentences
    return []


def ignored_keys(content: dict, kind: Kind) -> list[str]:
    """Every key MLServer would ignore in ``content``, each named with what it most likely
    meant: a known key spelt alike, or the file or level where a key of that name belongs."""
    return list(_ignored(content, _model(kind), kind, ()))


@functools.cache
def known_fields(model: type[BaseModel]) -> dict[str, Any]:
    """{key as written in a file: field} of a pydantic model, aliases included."""
    known = {}
    for name, field in model.model_fields.items():
        if field.deprecated:  # ModelSettings' parallel_workers: a server setting now, named as such
            continue
        known[field.serialization_alias or field.alias or name] = field
        choices = getattr(field.validation_alias, "choices", None) or []
        for choice in choices:
            if isinstance(choice, str) and not choice.isupper():  # not the MLSERVER_* env names
                known[choice] = field
    return known


def _model(kind: Kind) -> type[BaseModel]:
    from mlserver.settings import ModelSettings, Settings

    return Settings if kind == "settings" else ModelSettings


def _ignored(content: dict, model: type, kind: Kind, path: tuple):
    from mlserver.settings import ModelParameters, ModelSettings, Settings

    known = known_fields(model)
    for key, value in content.items():
        field = known.get(key)
        if field is not None:
            if key in FREE_FORM:
                continue
            inner = _submodel(field.annotation)
            if inner is not None and isinstance(value, dict):
                yield from _ignored(value, inner, kind, path + (key,))
            elif inner is not None and isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, dict):
                        yield from _ignored(item, inner, kind, path + (key, index))
            continue
        where = _where(path + (key,))
        ignored = f"{where}: MLServer has no such {'setting' if not path else 'field'} and ignores it"
        other_kind: Kind = "settings" if kind == "model-settings" else "model-settings"
        other = known_fields(Settings if other_kind == "settings" else ModelSettings) if not path else {}
        mine, theirs = _match(key, known), _match(key, other)
        if isinstance(value, dict) and value and sum(inner in known for inner in value) * 2 >= len(value):
            level = f"at the top level of {FILES[kind]}" if not path else "one level up"
            shown = ", ".join(map(repr, list(value)[:3])) + ("..." if len(value) > 3 else "")
            yield (f"{where} holds {shown} inside an object of its own: MLServer reads them {level} and ignores "
                   f"{where} with all it holds.")
            continue
        server_or_model = "the whole server" if other_kind == "settings" else "one model"
        if theirs and theirs[0] == 0:
            yield (f"{where} is a setting of {server_or_model}: MLServer reads it from {FILES[other_kind]} and "
                   f"ignores it in {FILES[kind]}.")
        elif mine and (not theirs or mine[0] <= theirs[0]):
            yield f"{ignored}; did you mean {_where(path + (mine[1],))}?"
        elif model is ModelParameters and key in known_fields(ModelSettings):
            yield (f"{where}: one level too deep. MLServer reads {key!r} at the top level of model-settings.json "
                   "(beside \"name\"); under \"parameters\" it ignores it.")
        elif model is ModelSettings and key in known_fields(ModelParameters):
            yield (f"{where}: MLServer reads {key!r} under \"parameters\" and ignores it at the top level of "
                   "model-settings.json.")
        elif theirs:
            yield (f"{ignored}; did you mean {_where((theirs[1],))}? That is a setting of {server_or_model}, read "
                   f"from {FILES[other_kind]}.")
        elif model is ModelParameters:
            yield f"{ignored}: a runtime's own options go under parameters.extra."
        elif path:
            yield f"{ignored} (it knows {', '.join(known)})."
        else:
            yield f"{ignored} (it is none of the settings MLServer reads from {FILES[kind]})."


def _submodel(annotation: Any) -> type | None:
    """The pydantic model inside ``Optional[Model]`` or ``List[Model]``, if any."""
    from typing import get_args

    from pydantic import BaseModel

    candidates = [annotation, *get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _squash(key: str) -> str:
    """A key with case, underscores, hyphens and spaces left out: ``maxBatchSize`` ~ ``max_batch_size``."""
    return re.sub(r"[_\-\s]", "", key).lower()


def _match(key: str, known: dict) -> tuple[int, str] | None:
    """The known key ``key`` most likely meant, with how sure: 0, the same but for case or
    separators; 1, a part of it or it a part of ``key`` ("workers", "debug_mode"); 2, spelt
    alike. None when nothing is close."""
    squashed = {_squash(name): name for name in known}
    mine = _squash(key)
    if mine in squashed:
        return 0, squashed[mine]
    containing = sorted((name for name in squashed if len(mine) >= 5 and mine in name), key=len)
    if containing:
        return 1, squashed[containing[0]]
    # A known key inside it ("debug" of "debug_mode", "host" of "hostname"): the longest such key.
    contained = sorted((name for name in squashed if len(name) >= 4 and name in mine), key=len, reverse=True)
    if contained:
        return 1, squashed[contained[0]]
    match = difflib.get_close_matches(mine, list(squashed), n=1, cutoff=0.75)
    return (2, squashed[match[0]]) if match else None


def _where(loc: tuple) -> str:
    """``"outputs"[0]."datatype"`` as a reader of the file says it: ``outputs[0].datatype``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return f"\"{text}\"" if "." not in text and "[" not in text else text


# How MLServer (and uvicorn, which it gives the same setting) applies logging_settings: a file's
# JSON to logging.config.dictConfig, any other file to fileConfig, an object to dictConfig.
_APPLY_LOGGING = """
import json, logging.config, sys
value = json.loads(sys.stdin.read())
if isinstance(value, dict):
    logging.config.dictConfig(value)
elif value.endswith(".json"):
    with open(value) as settings:
        logging.config.dictConfig(json.load(settings))
else:
    logging.config.fileConfig(value, disable_existing_loggers=False)
"""


def logging_problem(value: object, base: Path) -> str | None:
    """Why MLServer would fail to start with ``logging_settings`` = ``value`` (a file name read
    from ``base``, where ``mlserver start`` runs, or an object), or None. Applied in a child
    Python, as MLServer applies it, so that this process's logging stays as it is."""
    import subprocess
    import sys

    if not isinstance(value, (str, dict)):
        return f"is {value!r}, neither a file name nor an object"
    if isinstance(value, str):
        path = base / value
        if path.is_dir():
            return "is a folder, not a file"
        if not path.is_file():
            return "names no file (MLServer reads it from the folder it is started in, the notebook's)"
        value = str(path)
    done = subprocess.run([sys.executable, "-c", _APPLY_LOGGING], input=json.dumps(value), capture_output=True,
                          text=True, timeout=30)
    if done.returncode == 0:
        return None
    error = (done.stderr.strip().splitlines() or ["it failed"])[-1]
    return f"does not configure Python's logging ({error})"
