"""The student hand-out (`make handout`): everything a student needs, no answers, and a
JupyterLab without solutions or instructor tools."""

import json
import os
import posixpath
import re
import subprocess
import sys
import tarfile

import pytest
import requests

from labkit.instructor import handout
from labkit.instructor.build import NOTEBOOKS
from tests.helpers.lab import REPO
from tests.helpers.jupyterlab import execute_in_kernel, running_lab

HIDDEN_CHECKS = ["top5_under_adaptive_batching", "pick_configuration_function"]
STUDENT_NEEDS = ["Makefile", "README.md", "requirements.txt", "pyproject.toml", "env.yaml",
                 "tinyvit/serve-model.py", "tinyvit/model-settings.json", "imgs/cat.jpg",
                 "labkit/checks/live.py", "labkit/checks/settings_files.py", "labkit/serving/server.py",
                 "tools/jupyter/labconfig/page_config.json", "tools/jupyter/nbgrader_config.py",
                 "runtimes/tinyvit-timm/model-settings.json"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return handout.build(tmp_path_factory.mktemp("handout"))


@pytest.fixture(scope="module")
def members(archive):
    with tarfile.open(archive) as tar:
        return {member.name.removeprefix(f"{handout.NAME}/"): (member, tar.extractfile(member).read()
                if member.isfile() else None) for member in tar.getmembers()}


def test_the_archive_holds_what_a_student_needs(members):
    missing = [name for name in STUDENT_NEEDS if name not in members]
    assert not missing, missing
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert members[f"notebooks/{notebook.name}"][1] == notebook.read_bytes(), notebook.name
    assert members["Makefile"][1] == (REPO / "tools" / "lab.mk").read_bytes()
    assert all(member.uname == "" and member.uid == 0 for member, _ in members.values())


def test_validate_gives_a_notebooks_longest_cell_time_and_a_silent_kernel_patience(monkeypatch, tmp_path):
    # This session: Validate failed notebooks 04 and 05 when right, on a busy machine
    # ("Timeout waiting for IOPub output" after 4 s; nbgrader also stops a cell after 30 s, and
    # 04's measurements take minutes there). The config as the Validate button's server
    # extension loads it: nbgrader's app over the Jupyter config path the lab sets.
    from jupyter_core.paths import jupyter_config_path
    from nbgrader.apps import NbGrader
    from nbgrader.validator import Validator
    from nbgrader.preprocessors import Execute

    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(REPO / "tools" / "jupyter"))
    monkeypatch.chdir(tmp_path)  # the extension also reads the working folder's config: none here
    app = NbGrader()
    app.config_file_paths.append(jupyter_config_path())
    app.load_config_file()
    execute = Execute(config=Validator(config=app.config).config)
    assert execute.timeout >= 600, execute.timeout
    assert execute.iopub_timeout >= 30


def test_the_archive_holds_no_solutions_sources_or_hidden_checks(members):
    names = set(members)
    assert not [name for name in names if name.startswith(("notebooks/solutions", "notebooks/source"))]
    assert not [name for name in names if name.startswith(tuple(handout.INSTRUCTOR_ONLY))]
    assert not [name for name in names if "__pycache__" in name or name.startswith(("tests", "weights"))]
    # No file that answers an exercise: the lab's pinned tinyvit/requirements.txt is 06's answer.
    assert "tinyvit/requirements.txt" not in names and "tinyvit/serve-model.py" in names
    # The tests' own tools and the instructor's records stay out: a student installs what the lab needs.
    assert "requirements-dev.txt" not in names and "requirements.txt" in names
    assert not [name for name in names if "test-runs" in name or "/grading-" in name]
    for name, (_, data) in members.items():
        if data is not None and name.endswith((".py", ".ipynb", ".md", ".json", ".txt", ".mk")):
            text = data.decode()
            for secret in HIDDEN_CHECKS + ["### BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "NBVAL_"]:
                assert secret not in text, f"{name} holds {secret!r}"
    for name in [name for name in names if name.startswith("notebooks/") and name.endswith(".ipynb")]:
        notebook = json.loads(members[name][1])
        assert "widgets" not in notebook["metadata"], name


def test_the_helper_package_works_without_the_instructor_modules(archive, tmp_path):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    folder = tmp_path / handout.NAME
    modules = sorted(path.stem for path in (folder / "labkit").glob("*.py") if path.stem != "__init__")
    code = ("import importlib, labkit\n"
            f"assert labkit.__file__.startswith({str(folder)!r}), labkit.__file__\n"
            f"for name in {modules!r}:\n    importlib.import_module('labkit.' + name)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env={"PYTHONPATH": str(folder), "PATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_folder_it_did_not_write_is_never_replaced(tmp_path):
    mine = tmp_path / handout.NAME
    mine.mkdir()
    (mine / "notes.md").write_text("my notes")
    with pytest.raises(FileExistsError, match="not a hand-out"):
        handout.build(tmp_path)
    assert (mine / "notes.md").read_text() == "my notes"
    handout.build(tmp_path / "fresh")
    handout.build(tmp_path / "fresh")  # its own hand-out is replaced


@pytest.mark.slow
def test_make_lab_of_the_handout_shows_students_no_solutions_or_instructor_tools(archive, tmp_path):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    folder = tmp_path / handout.NAME
    # The repository's environment and weights stand in for the ones `make lab` would set up
    # (same requirements.txt and pyproject.toml, so the same install stamp).
    (folder / ".venv").symlink_to(REPO / ".venv")
    (folder / "weights").symlink_to(REPO / "weights")
    # A PATH without the lab's environment, as a student's shell has before `make lab`.
    path = os.pathsep.join(part for part in os.environ["PATH"].split(os.pathsep) if ".venv" not in part)
    with running_lab(folder=folder, through_make=True, env={"PATH": path}) as (_, port, url):
        base, token = f"http://127.0.0.1:{port}", {"token": url.split("token=")[1]}
        # `!mlserver ...` in a cell finds the lab's mlserver, as it does under `make grade`.
        kernel = requests.post(f"{base}/api/kernels", params=token, json={"name": "python3"}, timeout=30).json()
        channels = f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token['token']}"
        reply = execute_in_kernel(channels, "import shutil\nfound = shutil.which('mlserver')",
                                  user_expressions={"found": "found"})
        found = reply["user_expressions"]["found"]["data"]["text/plain"]
        assert found.strip("'").startswith(str(folder / ".venv" / "bin")), found
        requests.delete(f"{base}/api/kernels/{kernel['id']}", params=token, timeout=30)
        listing = requests.get(f"{base}/api/contents", params=token, timeout=10).json()["content"]
        assert {item["name"] for item in listing} == {path.name for path in NOTEBOOKS.glob("*.ipynb")}
        page = requests.get(f"{base}/lab", params=token, timeout=10).text
        config = json.loads(page.split('id="jupyter-config-data" type="application/json">')[1].split("</script>")[0])
        disabled = set(config["disabledExtensions"])
        assert {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:menu",
                "@jupyterlab/apputils-extension:announcements"} <= disabled
        assert "@jupyter/nbgrader:validate-assignment" not in disabled  # the students' Validate button
        assert requests.get(f"{base}/formgrader", params=token, timeout=10).status_code == 404

        def default(plugin: str, key: str) -> object:
            answer = requests.get(f"{base}/lab/api/settings/{plugin}", params=token, timeout=10).json()
            return answer["schema"]["properties"][key]["default"]

        # Saved notebooks keep their widget state: reopened, they show the widgets, not
        # "Error displaying widget: model not found".
        assert default("@jupyter-widgets/jupyterlab-manager:plugin", "saveState") is True
        assert default("@jupyterlab/apputils-extension:notification", "fetchNews") == "false"


MAKE_COMMAND = re.compile(r"`make ([a-z][a-z0-9-]*)")
# Paths a notebook names, relative to the hand-out's root or (starting with ../) to notebooks/.
NAMED_PATH = re.compile(
    r"`(?:\.\./)?((?:tinyvit|runtimes|benchmarks|deploy|monitoring|imgs|labkit|docs|tools)/[\w./-]*\w)`")


def test_every_command_and_file_a_notebook_names_is_in_the_handout(members):
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", members["Makefile"][1].decode(), re.M))
    named_targets, named_paths = set(), set()
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        text = "\n".join("".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"])
        named_targets |= {(notebook.name, target) for target in MAKE_COMMAND.findall(text)}
        named_paths |= {(notebook.name, path) for path in NAMED_PATH.findall(text)}
        assert "README's" not in text and "the README" not in text, (
            f"{notebook.name} cites the repository's README, which the hand-out does not have")
    assert {target for _, target in named_targets} >= {"weights", "hf-runtime"}, named_targets
    missing = [pair for pair in named_targets if pair[1] not in targets]
    assert not missing, f"make targets the hand-out's Makefile lacks: {missing}"
    folders = {name.rstrip("/") for name in members} | {name.rsplit("/", 1)[0] for name in members}
    absent = [pair for pair in named_paths if pair[1].rstrip("/") not in folders]
    assert len(named_paths) >= 5 and not absent, f"files named but not in the hand-out: {absent}"


def test_make_handout_needs_no_virtual_environment():
    # Writing the hand-out copies files (standard library only): it must not first install
    # torch and the rest into the instructor's checkout. -B: as if nothing were built yet.
    plan = subprocess.run(["make", "-n", "-B", "handout", "OUT=/nonexistent"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout
    assert "-m labkit handout" in plan and "pip install" not in plan and "venv" not in plan, plan


# `name.attribute` in a notebook's prose, and where the name comes from for the student.
DOTTED = re.compile(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?`")
FILE_NAME = re.compile(r"^[\w-]+(\.onnx)?\.(py|json|txt|yml|yaml|safetensors|onnx)$")


def _resolve(dotted: str) -> bool:
    """Whether ``dotted`` names something that exists for the student: a module path and its
    attributes, or an attribute of the object a notebook's variable of that name holds."""
    import importlib

    from labkit.measure import ScalingLab
    from labkit.serving import ModelServer
    from timm.data import ImageNetInfo

    roots = {"server": ModelServer, "lab": ScalingLab, "LABELS": ImageNetInfo}
    first, *rest = dotted.split(".")
    if first in roots:
        value = roots[first]
    else:
        module = {"np": "numpy", "metrics": "labkit.measure.metrics"}.get(first, first)
        value = None
        for cut in range(len(rest), -1, -1):  # the longest importable prefix, then attributes
            try:
                value = importlib.import_module(".".join([module, *rest[:cut]]))
            except ImportError:
                continue
            rest = rest[cut:]
            break
        if value is None:
            return False
    for part in rest:
        if not hasattr(value, part):
            return False
        value = getattr(value, part)
    return True


def _defined_in(members: dict, dotted: str) -> bool:
    """A lab module's name defined in the hand-out's copy of its file (a module that imports
    what only an optional environment holds, such as .venv-hf's runtime, is read, not imported)."""
    *module, name = dotted.split(".")
    member = members.get("/".join(module) + ".py")
    source = member[1].decode() if member and member[1] else ""
    return bool(re.search(rf"^(class|def) {name}\b|^{name} =|^from \S+ import .*\b{name}\b", source, re.M))


def test_every_attribute_and_file_a_notebook_names_exists_where_the_student_is(members):
    # What the prose names in backticks: a module's attribute (`labkit.measure.metrics.scrape`,
    # `mlserver.log`), an attribute of a notebook's object (`server.infer_url`), a file (in the
    # hand-out, or one a cell writes). Names of the student's own class (`self.model`) and of
    # packages outside the lab's environment are not the lab's to keep.
    outside = {"self", "transformers", "parameters", "rows", "tiny_vit_5m_224", "InferenceRequest"}
    # Files the prose names that are not the hand-out's: made by `make weights`, or named as
    # what another tool reads (a hub's model folder, `mlserver build`'s conda file).
    # The ONNX export and its record: made by `make onnx` (04) and linked into 05's challenge folder.
    elsewhere = {"tinyvit.safetensors", "tinyvit.onnx", "tinyvit.onnx.json", "config.json", "environment.yml"}
    written = set(elsewhere)
    unknown, absent = [], []
    texts = {}
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        written |= {line.split()[1].rsplit("/", 1)[-1] for cell in cells for line in "".join(cell["source"]).split("\n")
                    if line.startswith("%%writefile")}
        texts[notebook.name] = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    files = {name.rsplit("/", 1)[-1] for name in members}
    assert not _resolve("server.log_tails") and not _resolve("labkit.measure.metrics.scrapes")  # it can fail
    for notebook, text in texts.items():
        for dotted in set(DOTTED.findall(text)):
            if FILE_NAME.match(dotted):
                if dotted not in files | written:
                    absent.append((notebook, dotted))
            elif dotted.split(".")[0] not in outside and not (_resolve(dotted) or _defined_in(members, dotted)):
                unknown.append((notebook, dotted))
    assert not unknown, f"named in a notebook, but not there for the student: {unknown}"
    assert not absent, f"files named in a notebook, neither in the hand-out nor written by a cell: {absent}"


IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_every_picture_a_notebook_shows_is_in_the_handout(members):
    # A markdown image's path, from the notebook's folder (notebooks/), names a file of the
    # hand-out: JupyterLab shows a broken image, without a word, for one that is not there.
    shown = []
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                shown += [(notebook.name, link) for link in IMAGE_LINK.findall("".join(cell["source"]))]
    assert ("01_first_service.ipynb", "../imgs/serving-setup.svg") in shown
    missing = [(name, link) for name, link in shown
               if posixpath.normpath(posixpath.join("notebooks", link)) not in members]
    assert not missing, f"pictures a notebook shows that the hand-out lacks: {missing}"
