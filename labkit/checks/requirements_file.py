"""Notebook 06's ``requirements.txt`` (:func:`requirements`): any valid pip requirements file
that pins what the lab was tested with. The build folder is ``build_folder.py``'s."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.checks.feedback import CheckFailed, passed
from labkit.paths import PathLike

if TYPE_CHECKING:  # imported where used
    from packaging.requirements import Requirement


# What the service imports (its distribution names), and the pin MLServer 1.7.1 itself needs:
# with uvloop 0.22 every parallel worker crash-loops.
SERVICE_DISTRIBUTIONS = ("mlserver", "torch", "timm", "numpy", "pillow", "safetensors")
CONDA_LINE = re.compile(r"^[A-Za-z0-9_.-]+=[^=\s]+=\S+$")  # name=version=build, `conda list -e`


# What pip reads after a requirement on its own line (pip's requirement options).
REQUIREMENT_OPTIONS = ("--hash", "--config-settings", "-C", "--global-option")
# Options a requirements file may carry that change where pip looks, not what it installs.
INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--pre",
                 "--prefer-binary", "--only-binary", "--use-feature")
# Those of them that take no value (helper session 9: --pre and --prefer-binary were refused as
# options without an address).
FLAG_OPTIONS = ("--pre", "--prefer-binary")
# The Python of the image `mlserver build` makes (seldonio/mlserver:1.7.1): markers are read for it.
IMAGE_PYTHON = {"python_version": "3.10", "python_full_version": "3.10.12", "implementation_version": "3.10.12",
                "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}


def _text_as_pip_reads_it(path: Path) -> str:
    """The file's text as pip decodes it: past a byte order mark (UTF-8, UTF-16 or UTF-32: helper
    session 8, a file Windows Notepad saved as "Unicode" crashed the check), else UTF-8."""
    import codecs

    data = path.read_bytes()
    for mark, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"),
                           (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                           (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(mark):
            data, chosen = data[len(mark):], encoding
            break
    else:
        chosen = "utf-8"
    try:
        return data.decode(chosen)
    except UnicodeDecodeError as error:
        raise CheckFailed(f"{path.parent.name}/{path.name} is not text pip can read: byte {error.start} is not "
                          f"{chosen}.", "Save it as plain text (UTF-8).") from None


def requirements(folder: PathLike) -> None:
    """Notebook 06: ``requirements.txt`` for ``mlserver build``: any valid pip requirements
    file (comments, index options, extras, markers, any spelling of a name) in which every
    package the service imports admits the version this lab runs and no other release series
    (``==``, ``~=`` or a ``>=,<`` range), and uvloop admits no 0.22 or later.

    Args:
        folder: the service folder whose ``requirements.txt`` is read, beside its service files.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    from importlib.metadata import version

    path = Path(folder) / "requirements.txt"
    if not path.is_file():
        raise CheckFailed(f"{path.parent.name}/requirements.txt does not exist yet.",
                          f"Write it with a cell that starts with %%writefile {path.parent.name}/requirements.txt")
    pins, local_builds = _read_requirements(_text_as_pip_reads_it(path))
    if not pins:
        raise CheckFailed(f"{path.parent.name}/requirements.txt lists no package yet.",
                          "List every package the service's files import, each with the version you tested.")
    missing = [name for name in SERVICE_DISTRIBUTIONS if name not in pins]
    if missing:
        # Named by the student's own code (the first import line that needs it), never by the
        # list of packages to write.
        where = _first_import(Path(folder), missing[0])
        import_name = IMPORT_NAMES.get(missing[0], missing[0])
        listed_instead = import_name.lower() in pins and import_name.lower() != missing[0]
        raise CheckFailed((f"requirements.txt lists {import_name}: that is the name the code imports; pip knows "
                           "the package that provides it by another name, so the image would not have it."
                           if listed_instead else
                           f"requirements.txt lists no package for {where}: the image would not have it.")
                          + (f" ({len(missing) - 1} more import(s) lack theirs too.)" if len(missing) > 1 else ""),
                          "Every module the service's files import comes from a package; list each package by "
                          "its name on PyPI.")
    for name in SERVICE_DISTRIBUTIONS:
        _check_tested_series(pins[name], version(name))
    for number, line, build in local_builds:
        raise CheckFailed(f"Line {number}, {line!r}, names a build ({build}) that PyPI does not have: pip finds such "
                          "builds only on their maker's index, which this file does not name.",
                          "Name the index that has it, or the release as PyPI has it.")
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
    _check_the_other_packages(Path(folder), pins)
    others = len(pins) - len(SERVICE_DISTRIBUTIONS) - 1
    passed(f"requirements.txt in pip's format: the {len(SERVICE_DISTRIBUTIONS)} packages the service imports, each "
           "admitting the tested version only, and uvloop below 0.22"
           + (f"; {others} more package(s), none pinned to a version other than this lab's" if others > 0 else ""))


def _check_the_other_packages(folder: Path, pins: dict) -> None:
    """The file's other lines: no module of the service folder itself listed as a package, and
    a package this lab has installed, when pinned, admits the version installed here (helper
    session 9: the helpers' own modules and torchvision==0.1.0 were told "each admitting the
    tested version only")."""
    from importlib.metadata import PackageNotFoundError, version
    from packaging.utils import canonicalize_name

    own = {canonicalize_name(path.stem): path.name for path in folder.glob("*.py")}
    for name, requirement in pins.items():
        if name in own:
            raise CheckFailed(f"requirements.txt lists {requirement.name}, which is {own[name]} of the service folder "
                              "itself: the image gets it with the folder's files, and pip would look for a package "
                              "of that name on PyPI (none, or a stranger's).",
                              "List the packages the service's files import from outside the folder.")
        if name == "labkit" or _installed_from_a_folder(name):
            # helper session 12: labkit==0.1.0 passed; pip in the image would look it up on PyPI.
            raise CheckFailed(f"requirements.txt lists {requirement.name}, which is installed here from a folder "
                              "on this machine (this lab's own code), not from a package index: pip in the image "
                              "would look for it on PyPI (none, or a stranger's), and the service does not import it.",
                              "List the packages the service's files import from outside the folder.")
        if name in SERVICE_DISTRIBUTIONS or name == "uvloop" or not str(requirement.specifier):
            continue
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            raise CheckFailed(f"{requirement} does not admit {requirement.name} {installed}, the version the lab runs "
                              "and your service was tested with.",
                              "Pin it to the version installed here, or leave it out: pip installs what the "
                              "service's packages need.")


def _installed_from_a_folder(name: str) -> bool:
    """Whether pip installed ``name`` here from a local folder (PEP 610: ``dir_info``)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        origin = json.loads(distribution(name).read_text("direct_url.json") or "{}")
    except (PackageNotFoundError, ValueError):
        return False
    return "dir_info" in origin


# The module each distribution provides, where the two names differ.
IMPORT_NAMES = {"pillow": "PIL"}


def _first_import(folder: Path, distribution: str) -> str:
    """``<file>, line <n>: <import line>`` of the first import of ``distribution``'s module
    in the folder's Python files, or the module's name."""
    import ast

    module = IMPORT_NAMES.get(distribution, distribution)
    for source in sorted(folder.glob("*.py"), key=lambda path: path.name != "serve-model.py"):
        try:
            tree = ast.parse(source.read_text())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in sorted(ast.walk(tree), key=lambda node: getattr(node, "lineno", 0)):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            # the isinstance: names come only from imports (it tells mypy the node has a line)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and any(name.split(".")[0] == module for name in names):
                line = ast.get_source_segment(source.read_text(), node) or f"import {module}"
                return f"`{line}` ({source.name}, line {node.lineno})"
    return f"the module {module}"


def _read_requirements(text: str) -> tuple[dict, list]:
    """{normalised name: Requirement} of a pip requirements file, for the image it builds (a
    line whose marker is false there is left out; a package's lines combined, as pip does),
    and the (line number, line, build) of each local build no index of the file serves;
    CheckFailed names a line pip refuses."""
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, Requirement] = {}
    first_line: dict[str, int] = {}
    local_builds, left_out = [], {}
    lines = text.replace("\\\n", "").splitlines()  # pip joins lines that end with a backslash
    hashed = [number for number, raw in enumerate(lines, start=1) if "--hash" in raw.split("#")[0]]
    listed = [number for number, raw in enumerate(lines, start=1)
              if raw.split("#")[0].strip() and not raw.strip().startswith("-")]
    if hashed and set(listed) - set(hashed):
        raise CheckFailed(f"Line {hashed[0]} gives a --hash: with one, pip checks a hash for every package, and line "
                          f"{min(set(listed) - set(hashed))} gives none, so the build would stop there.",
                          "Hashes on every line, or on none.")
    # PyPI added back beside another index (helper session 9: --index-url with PyPI as an extra
    # index was refused as replacing PyPI).
    pypi_kept = any(re.match(r"\s*--extra-index-url[=\s]+\S*pypi\.org", line) for line in lines)
    # pip reads an index option wherever it stands in the file.
    extra_index = any(re.match(r"\s*(--extra-index-url|--index-url|-i|-f|--find-links)\b", line) for line in lines)
    for number, raw in enumerate(lines, start=1):
        line = re.split(r"(^|\s)#", raw, maxsplit=1)[0].strip()  # pip: a comment starts at " #"
        if not line:
            continue
        if CONDA_LINE.match(line):
            raise CheckFailed(f"Line {number}, {line!r}, is conda's format (name=version=build, what `conda list "
                              "-e` writes); pip, which `mlserver build` runs, cannot read it.",
                              "pip's format: a package name, then a version specifier.")
        on_the_line = re.search(r"\s(--extra-index-url|--index-url|-i|-f|--find-links)\b", line)
        if on_the_line and not line.startswith("-"):
            # pip takes only --hash (and build settings) after a requirement: an index there is
            # ignored without a word (helper session 5: misnamed as "this file does not name" one).
            raise CheckFailed(f"Line {number}, {line!r}, gives {on_the_line.group(1)} on a requirement's own line, "
                              "where pip ignores it: the package would come from PyPI as if it were not there.",
                              "pip reads an index option on a line of its own.")
        given = [option.split("=")[0] for option in re.findall(r"\s(--?[A-Za-z][\w-]*(?:=\S*)?)", line)] \
            if not line.startswith("-") else []
        stops = [option for option in given if option not in REQUIREMENT_OPTIONS]
        if stops:
            # helper session 6: `mlserver==1.7.1 --no-deps` passed, and pip stops on it
            raise CheckFailed(f"Line {number}, {line!r}, gives {stops[0]} after a requirement: pip takes only a "
                              "--hash and build settings there, and stops the build on any other option (\"no such "
                              "option\").", "A requirement's line holds the package, its versions and a marker.")
        line = re.split(r"\s--?[a-z]", line, maxsplit=1)[0].strip() if not line.startswith("-") else line
        if line.startswith("-"):
            option = line.split()[0].split("=")[0]
            if option not in INDEX_OPTIONS:
                raise CheckFailed(f"Line {number}, {line!r}: the image is built from this file alone, and pip "
                                  "would stop on that option (it points at something the build folder does not have, "
                                  "or is not an option of a requirements file).",
                                  "List the packages themselves; index options such as --extra-index-url are fine.")
            if option in FLAG_OPTIONS:
                continue
            address = line.split("=", 1)[1] if "=" in line.split()[0] else (line.split() + [""])[1]
            if not address.strip():
                # helper session 8: passed; pip stops ("option requires 1 argument")
                raise CheckFailed(f"Line {number}, {line!r}, gives {option} without an address: pip stops the "
                                  "build there.", "An index option names the index it adds.")
            if option in ("-i", "--index-url") and "pypi.org" not in address and not pypi_kept:
                raise CheckFailed(f"Line {number}, {line!r}, replaces PyPI with another index: pip would look for "
                                  "every package there, and MLServer, timm and uvloop are not on it.",
                                  "An index that adds to PyPI has its own option.")
            continue
        if line.startswith(("git+", "hg+", "svn+", "bzr+", "http://", "https://", "file:")):
            raise CheckFailed(f"Line {number}, {line!r}, installs from a URL, not a tested release.",
                              "Name the package and the versions it may take.")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise CheckFailed(f"Line {number}, {line!r}, is not a pip requirement ({error}).",
                              "pip's format: a package name, then a version specifier.") from None
        if requirement.url:
            raise CheckFailed(f"Line {number}, {line!r}, installs from a URL, not a tested release.",
                              "Name the package and the versions it may take.")
        # packaging's Environment is a TypedDict of str values, which mypy reads as object
        environment: dict[str, str] = {**default_environment(), **IMAGE_PYTHON}  # type: ignore[dict-item]
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            left_out[canonicalize_name(requirement.name)] = number
            continue  # for another platform or Python: not installed in the image
        name = canonicalize_name(requirement.name)
        if name == "python":
            raise CheckFailed(f"Line {number}, {line!r}: Python is not a package pip installs; pip would stop "
                              "there (no matching distribution).",
                              "The image's Python comes from its base image; list packages only.")
        local = [spec.version.split("+", 1)[1] for spec in requirement.specifier if "+" in spec.version]
        if local and not extra_index:
            local_builds.append((number, line, local[0]))
        if name in first_line:
            # pip takes every line of a package: together they must still admit the tested release.
            combined = Requirement(str(requirement))
            combined.specifier &= pins[name].specifier
            tested = _installed(name)
            if tested and not combined.specifier.contains(tested, prereleases=True):
                raise CheckFailed(f"requirements.txt lists {requirement.name} twice (lines {first_line[name]} and "
                                  f"{number}), and no release satisfies both together: pip would stop there.",
                                  "List each package once.")
            requirement = combined
        first_line.setdefault(name, number)
        pins[name] = requirement
    for name, number in left_out.items():
        # uvloop too (helper session 8: its marker was read as uvloop not listed)
        if (name in SERVICE_DISTRIBUTIONS or name == "uvloop") and name not in pins:
            raise CheckFailed(f"Line {number}'s marker leaves {name} out of the image: `mlserver build` installs into "
                              f"MLServer 1.7.1's image, which runs Python {IMAGE_PYTHON['python_full_version']}.",
                              "A marker is read where pip runs, in the image.")
    return pins, local_builds


def _installed(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _check_tested_series(requirement: Requirement, installed: str) -> None:
    """``requirement`` admits ``installed`` and no release of another series (the next or
    previous minor, the next major): what the image installs is what was tested."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    name, specifier = requirement.name, requirement.specifier
    # A local label names a build of the same release ("torch==2.14.1+cpu", from PyTorch's
    # CPU index, for a CPU-only image): the release is what was tested.
    specifier = SpecifierSet(",".join(f"{spec.operator}{spec.version.split('+')[0]}" for spec in specifier))
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
