"""A JSON file a student wrote (``settings.json``, ``model-settings.json``), read the way the
checks need it: every way it cannot be read is named in the student's terms (missing, empty, not
UTF-8, a trailing comma, a key written twice with two values), never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from labkit.checks.feedback import CheckFailed


def read_json(path: Path) -> dict:
    """The JSON object in ``path``, or CheckFailed that points at the mistake."""
    if not path.is_file():
        raise CheckFailed(f"{path.parent.name}/{path.name} does not exist yet.",
                          f"Write it with a cell that starts with %%writefile {path.parent.name}/{path.name}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        # helper session 15: a file saved as UTF-16 (Windows PowerShell's Out-File) crashed the check
        raise CheckFailed(f"{path.name} is not UTF-8 text (saved as UTF-16, or another encoding?): MLServer reads "
                          "UTF-8 only, and would refuse it.",
                          "Save it as UTF-8, or write it with a %%writefile cell.") from None
    if not text.strip():
        raise CheckFailed(f"{path.parent.name}/{path.name} is empty.",
                          "Write the JSON object on the lines under the %%writefile line, then run the cell.")
    try:
        content = json.loads(text, object_pairs_hook=_refuse_duplicates(path.name))
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


def _refuse_duplicates(name: str) -> Callable[[list], dict]:
    def pairs(items: list) -> dict:
        keys = [key for key, _ in items]
        # The same key twice with one value means what was asked (helper session 6: refused);
        # with two values, the first is silently lost.
        twice = sorted({key for key in keys if len({json.dumps(value, sort_keys=True)
                                                     for other, value in items if other == key}) > 1})
        if twice:
            raise CheckFailed(f"{name} sets {twice[0]!r} twice: JSON keeps only the last one, so the first has no "
                              "effect.", "Write each key once.")
        return dict(items)
    return pairs
