"""A build folder's ``.dockerignore`` (or ``Dockerfile.dockerignore``) read as Docker reads it
(moby's patternmatcher): which of the files an image needs it leaves out of the build context (helper session 12: a
``*.safetensors`` line built an image without its weights, and the check said ✔).

Docker's rules: one pattern per line, relative to the folder (a leading ``/`` or ``./`` is the
folder itself); blank lines and lines starting with ``#`` are skipped; ``*`` matches within one
path segment, ``?`` one character of it, ``**`` any number of segments, ``[...]`` a class,
``\\`` escapes; a pattern that matches a folder leaves out everything under it; a line starting
with ``!`` takes matching paths back in; the last line that matches a path decides.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path


def _pattern(text: str) -> re.Pattern:
    """The regular expression of one pattern, matched against a whole relative path."""
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if text.startswith("**/", index):
            out.append("(?:.*/)?")  # zero or more folders
            index += 3
            continue
        if text.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in text[index + 1:]:
            end = text.index("]", index + 1)
            inside = text[index + 1:end]
            out.append("[" + ("^" + inside[1:] if inside[:1] in ("^", "!") else inside) + "]")
            index = end + 1
            continue
        elif char == "\\" and index + 1 < len(text):
            out.append(re.escape(text[index + 1]))
            index += 2
            continue
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z")


def _rules(text: str) -> list[tuple[str, bool, re.Pattern]]:
    """(the line as written, whether it takes paths back in, its pattern), in order."""
    rules = []
    for line in text.splitlines():
        written = line.strip()
        if not written or written.startswith("#"):
            continue
        back_in = written.startswith("!")
        pattern = posixpath.normpath(written[1:].strip() if back_in else written).lstrip("/")
        if pattern in ("", "."):
            continue
        rules.append((written, back_in, _pattern(pattern)))
    return rules


def ignore_file(context: Path) -> Path | None:
    """The ignore file Docker reads for the folder's ``Dockerfile``: ``Dockerfile.dockerignore``
    beside it (what ``mlserver dockerfile -i`` writes; BuildKit prefers it), else
    ``.dockerignore``; None without either."""
    for name in ("Dockerfile.dockerignore", ".dockerignore"):
        if (context / name).is_file():
            return context / name
    return None


def ignored(context: Path, paths: list[str]) -> dict[str, str]:
    """Of ``paths`` (relative to ``context``), those the folder's ignore file (:func:`ignore_file`)
    leaves out of the build context, each with the line that leaves it out; {} without one."""
    ignore = ignore_file(context)
    if ignore is None:
        return {}
    rules = _rules(ignore.read_text(errors="replace"))
    found = {}
    for path in paths:
        parts = posixpath.normpath(path).split("/")
        # The path and every folder above it: a pattern that matches a folder leaves out its files.
        candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
        decided = None
        for written, back_in, pattern in rules:
            if any(pattern.match(candidate) for candidate in candidates):
                decided = None if back_in else written
        if decided:
            found[path] = decided
    return found
