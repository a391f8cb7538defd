"""Notebook 06's build folder (:func:`image_folder`): the folder ``mlserver dockerfile`` ran on,
with MLServer's Dockerfile as it writes it and everything the image needs, none of it left out
by the folder's ignore file (``dockerignore.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from labkit.checks.dockerignore import ignore_file, ignored
from labkit.checks.feedback import CheckFailed, passed
from labkit.checks.json_file import read_json
from labkit.paths import PathLike


def _mlserver_dockerfile() -> str:
    """The Dockerfile ``mlserver dockerfile`` writes, from MLServer's own template."""
    from mlserver.cli.build import generate_dockerfile

    return generate_dockerfile()


def _lines(text: str) -> list[str]:
    """A Dockerfile's lines as Docker reads them: line endings and trailing spaces do not count."""
    return [line.rstrip() for line in text.strip().splitlines()]


def _missing_steps(text: str) -> list[str]:
    """The steps of MLServer 1.7.1's Dockerfile a file lacks, read by instruction (comments
    left out; a CMD in exec form read as its words)."""
    instructions = []
    for line in text.replace("\\\n", " ").splitlines():
        words = line.strip().split(None, 1)
        if words and not words[0].startswith("#"):
            instruction, rest = words[0].upper(), (words[1] if len(words) > 1 else "")
            if instruction in ("CMD", "ENTRYPOINT") and rest.lstrip().startswith("["):
                try:
                    rest = " ".join(str(word) for word in json.loads(rest))
                except ValueError:
                    pass
            instructions.append((instruction, " ".join(rest.split())))
    steps = (("its base image", lambda op, rest: op == "FROM" and rest.split()[0].startswith("seldonio/mlserver:1.7.1")
              if rest else False),
             ("its requirements step", lambda op, rest: op in ("RUN", "COPY") and "requirements.tx" in rest),
             ("the copy of the build folder into the image", lambda op, rest: op in ("COPY", "ADD")
              and rest.split()[:1] == ["."]),
             ("the command that starts MLServer on the models", lambda op, rest: op in ("CMD", "ENTRYPOINT", "RUN")
              and "mlserver start" in rest))
    return [what for what, holds in steps if not any(holds(op, rest) for op, rest in instructions)]


def image_folder(context: PathLike) -> None:
    """Notebook 06: a build folder that ``mlserver dockerfile`` has run on, and that carries
    everything the image needs: the weights as a file, the service, its requirements.

    Args:
        context: the build folder (Docker's context) the student prepared for ``mlserver build``.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    context = Path(context)
    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file():
        # The build folder is a copy under the same name elsewhere: named by its path, so that
        # "shipped/ has no Dockerfile" is not read about the notebook's shipped/ (helper session 5).
        # helper session 6: `mlserver dockerfile .` writes it next to the notebook itself
        # helper session 8: `mlserver dockerfile` on the build folder's parent, one folder too high
        elsewhere = next((folder for folder in (Path(context.name), Path("."), context.parent)
                          if (folder / "Dockerfile").is_file()), None)
        there = ("the folder of the notebook" if elsewhere == Path(".") else
                 f"{elsewhere}, the folder above the build folder" if elsewhere == context.parent else
                 f"{elsewhere}/ next to the notebook")
        raise CheckFailed(f"The build folder ({context}) has no Dockerfile"
                          + (f" (there is one in {there}: MLServer wrote it where the command pointed it)."
                             if elsewhere else "."),
                          "The exercise's cell runs MLServer's command that writes a Dockerfile, on the build "
                          "folder the cell before it made.")
    text = dockerfile.read_text()
    ours, theirs = _lines(text), _lines(_mlserver_dockerfile())
    if ours != theirs:
        # helper session 8: a hand-written Dockerfile held the four steps checked as text; an
        # exec-form CMD was taken for none. What MLServer writes is known exactly: any other file
        # is named by the first step it lacks, read as Docker reads it, or by the first line it changes.
        missing = _missing_steps(text)
        bases = [line.split()[1] for line in text.splitlines() if len(line.split()) > 1
                 and line.split()[0].upper() == "FROM"]
        if missing and missing[0] == "its base image" and bases:
            # helper session 15: a hand-written file FROM python:3.11-slim was told its base image is missing
            raise CheckFailed(f"The Dockerfile is not the one MLServer 1.7.1 writes: it starts FROM {bases[0]}, "
                              "another base image than MLServer's own, so it was written by hand. The exercise is "
                              "MLServer's command, which writes it.", "Let MLServer write it, on the build folder.")
        if missing:
            raise CheckFailed(f"The Dockerfile is not the one MLServer 1.7.1 writes: {', '.join(missing)} "
                              f"{'is' if len(missing) == 1 else 'are'} missing, so the image would not serve the "
                              "model.", "Let MLServer write it, on the build folder.")
        line = next((index for index, (mine, its) in enumerate(zip(ours, theirs)) if mine != its),
                    min(len(ours), len(theirs)))
        raise CheckFailed(f"The Dockerfile has the steps of MLServer's, and is not the file MLServer 1.7.1 writes: "
                          f"it differs from line {line + 1} on, so it was written or changed by hand. The exercise "
                          "is MLServer's command, which writes it.", "Let MLServer write it, on the build folder.")
    if not (context / "requirements.txt").is_file():
        if not Path(context.name, "requirements.txt").is_file():
            # Exercise 1's file is not written (or not where it belongs): its check counts that,
            # and this one grades the Dockerfile (one mistake costs one exercise).
            passed(f"not charged here: {context.name}/requirements.txt, Exercise 1's file, does not exist, and "
                   "Exercise 1's check counts that; the build folder has MLServer's Dockerfile")
            return
        raise CheckFailed("The build folder has no requirements.txt, though Exercise 1 wrote one: the folder was "
                          "built before it, and the image would install nothing for the service.",
                          "Build the folder again, then let MLServer write its Dockerfile there.")
    shipped = Path(context.name, "requirements.txt")
    changed = _what_changed(_requirements(context / "requirements.txt"), _requirements(shipped)) \
        if shipped.is_file() and shipped.resolve() != (context / "requirements.txt").resolve() else ""
    if changed:
        # helper session 12: requirements fixed in the notebook's folder after the build folder was
        # made; the image would install the old list (grading runs the cells in order, a student not).
        raise CheckFailed(f"The build folder's requirements.txt is not {shipped} as it is now ({changed}): the "
                          "folder was built before your last change to it, and the image would install the older "
                          "list.", "Build the folder again, then let MLServer write its Dockerfile there.")
    uri = (read_json(context / "model-settings.json").get("parameters") or {}).get("uri", ".")
    weights = (context / uri).resolve()
    if not weights.is_file() or (context / uri).is_symlink() or context.resolve() not in weights.parents:
        raise CheckFailed(f"The model's uri {uri!r} is not a weights file inside the build folder: the image "
                          "would have no weights.",
                          "Build from the folder labkit.serving.packaging.build_context made.")
    _check_nothing_needed_is_ignored(context, weights.relative_to(context.resolve()).as_posix())
    passed("the build folder has MLServer's Dockerfile, a requirements file and the weights")


def _check_nothing_needed_is_ignored(context: Path, weights: str) -> None:
    """No file the image needs is left out by the folder's ``.dockerignore`` (helper session 12:
    ``*.safetensors`` there built an image without weights, with a ✔)."""
    needed = {weights: "the weights", "requirements.txt": "the service's packages",
              "model-settings.json": "the model's settings", "settings.json": "the server's settings",
              **{path.name: "the service's code" for path in sorted(context.glob("*.py"))}}
    needed = {path: what for path, what in needed.items() if (context / path).is_file()}
    left_out = ignored(context, list(needed))
    if left_out:
        path, line = next(iter(left_out.items()))
        ignore = ignore_file(context)
        raise CheckFailed(f"The build folder's {ignore.name if ignore else ''} leaves out {path} (its line "
                          f"{line!r}): Docker would build the image without {needed[path]}.",
                          "A .dockerignore names only what the image does not need.")


def _requirements(path: Path) -> dict[str, str]:
    """A requirements file as pip reads it: {package (canonical name) or option line: what it asks
    for}; comments, blank lines, spacing, order and the spelling of names do not count (helper
    sessions 13 and 14: a comment, sorted lines, "Pillow == 13.0.0" and "MLServer" were named as
    an older list)."""
    import re

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    read = {}
    for line in path.read_text(errors="replace").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:  # an option line (-i, --extra-index-url, ...): its words
            read[" ".join(line.split())] = ""
            continue
        read[canonicalize_name(requirement.name)] = (
            f"{','.join(sorted(requirement.extras))}|{','.join(sorted(str(spec) for spec in requirement.specifier))}"
            f"|{requirement.marker or ''}|{requirement.url or ''}")
    return read


def _what_changed(built: dict[str, str], now: dict[str, str]) -> str:
    """What the notebook's file asks for that the build folder's does not, in a few words ("" when
    they ask for the same)."""
    added = sorted(set(now) - set(built))
    removed = sorted(set(built) - set(now))
    changed = sorted(name for name in set(now) & set(built) if now[name] != built[name])
    said = [f"it lacks {', '.join(added)}" if added else "", f"it still has {', '.join(removed)}" if removed else "",
            f"{', '.join(changed)} asked for otherwise" if changed else ""]
    return "; ".join(part for part in said if part)
