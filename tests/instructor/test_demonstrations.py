"""What `make grade` does not run (labkit.instructor.demonstrations): proven statically over
every notebook (no name a demonstration defines is read by a cell that runs when graded), and
the skipping itself, in process. The grading proof (test_grading.py) grades its hand-ins with
the demonstrations skipped and gets the points they got with them run; nbval runs every
demonstration of the solutions."""

from __future__ import annotations

import ast

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from labkit.instructor.demonstrations import SKIPPED, RestoreDemonstrations, SkipDemonstrations, demonstrations
from labkit.instructor.build import SOURCES, parse_source

NOTEBOOKS = sorted(SOURCES.glob("*.py"))


def names(source: str) -> tuple[set[str], set[str]]:
    """(names the cell defines, names it reads), over the cell's Python as IPython runs it."""
    tree = ast.parse(TransformerManager().transform_cell(source))
    defined, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, (ast.Store, ast.Del)) else read).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return defined, read


def demonstration_names_read_when_graded(notebook: nbformat.NotebookNode) -> list[str]:
    """Names a cell that runs when graded reads whose last definition was a skipped
    demonstration (one its grading form does not make)."""
    forms = demonstrations(notebook)
    only_in_demonstrations: dict[str, str] = {}
    problems = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.id in forms:
            at_home, _ = names(cell.source)
            when_graded, read = names(forms[cell.id])
        else:
            at_home, (when_graded, read) = set(), names(cell.source)
        # A name the cell defines itself (an import at its top) is read from that definition.
        problems += [f"{cell.id} reads {name!r}, which only {only_in_demonstrations[name]} defines"
                     for name in sorted((read - when_graded) & set(only_in_demonstrations))]
        for name in when_graded:
            only_in_demonstrations.pop(name, None)
        for name in at_home - when_graded:
            only_in_demonstrations[name] = f"demonstration {cell.id}"
    return problems


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_no_cell_that_runs_when_graded_reads_a_name_only_a_demonstration_defines(source):
    notebook = parse_source(source.read_text())
    assert not demonstration_names_read_when_graded(notebook)
    for cell in notebook.cells:  # an exercise or a graded cell always runs
        assert not ("nbgrader" in cell.metadata and cell.metadata.get("lab", {}).get("demonstration")), cell.id


def test_the_static_rule_catches_a_name_read_after_its_demonstration_was_skipped():
    notebook = parse_source("# %%\nimport numpy as np\n# %% demo\nresults = np.ones(3)\nlab = 1\n"
                            "# %% while grading\nresults = np.zeros(3)\n# %%\nprint(results, lab)\n")
    assert demonstration_names_read_when_graded(notebook) == ["cell-002 reads 'lab', which only demonstration "
                                                              "cell-001 defines"]


def test_a_cell_that_imports_a_name_a_skipped_demonstration_also_imported_reads_its_own():
    notebook = parse_source("# %% demo\nfrom labkit.serving import terminal\nserver = terminal('a')\n"
                            "# %%\nfrom labkit.serving import terminal\ntuned = terminal('b')\n# %%\nserver.stop()\n")
    assert demonstration_names_read_when_graded(notebook) == ["cell-002 reads 'server', which only demonstration "
                                                              "cell-000 defines"]


def test_the_demonstrations_that_save_the_most_are_marked():
    # What a grading run spent its time on (the proof's hand-ins, 2026-12-06): these ran for
    # 10-56 s each and no point depends on them.
    marked = {source.stem: [notebook_cell.source for notebook_cell in parse_source(source.read_text()).cells
                            if notebook_cell.metadata.get("lab", {}).get("demonstration")] for source in NOTEBOOKS}
    for notebook, start in [("02_inference_requests", "from IPython.display import display"),
                            ("04_inference_runtimes", "import time"), ("04_inference_runtimes", "engines = "),
                            ("05_scaling", "from labkit.measure import ScalingLab"),
                            ("05_scaling", "import time"), ("07_monitoring", "from labkit.serving import prometheus")]:
        assert any(source.startswith(start) for source in marked[notebook]), (notebook, start)


def master_and_hand_in(tmp_path):
    master = parse_source("# %%\nx = 1\n# %% demo\n# NBVAL_CHECK_OUTPUT\nslow = measure()\n"
                          "# %% while grading\nslow = 0\n# %% demo\nplot()\n# %% solution id=answer\nanswer = 2\n"
                          "# %% tests id=answer-check points=1\nassert answer == 2\n")
    nbformat.write(master, tmp_path / "05_scaling.ipynb")
    hand_in = nbformat.from_dict(master)
    for cell in hand_in.cells:
        cell.metadata.pop("lab", None)  # the student's copy carries no marks
        cell.source = cell.source.replace("# NBVAL_CHECK_OUTPUT\n", "")
    return hand_in


def test_a_demonstration_left_as_given_runs_its_grading_form_and_shows_its_own_source_after(tmp_path):
    hand_in = master_and_hand_in(tmp_path)
    skipped, _ = SkipDemonstrations(source=str(tmp_path)).preprocess(hand_in, {"unique_key": "05_scaling"})
    assert skipped.cells[1].source == f"print({SKIPPED!r})\nslow = 0"
    assert skipped.cells[2].source == f"print({SKIPPED!r})\n"
    assert [cell.source for cell in skipped.cells[3:]] == ["answer = 2", "assert answer == 2"]
    restored, _ = RestoreDemonstrations().preprocess(skipped, {})
    assert [cell.source for cell in restored.cells] == ["x = 1", "slow = measure()", "plot()", "answer = 2",
                                                        "assert answer == 2"]
    assert not any("lab_skipped_source" in cell.metadata for cell in restored.cells)


def test_a_demonstration_the_student_changed_runs_as_written_and_a_hand_in_cannot_mark_one(tmp_path):
    hand_in = master_and_hand_in(tmp_path)
    hand_in.cells[1].source = "slow = measure(longer=True)"
    hand_in.cells[0].metadata["lab"] = {"demonstration": True, "while_grading": ""}  # read from the source only
    hand_in.cells[3].metadata["lab"] = {"demonstration": True, "while_grading": "answer = 2"}
    skipped, _ = SkipDemonstrations(source=str(tmp_path)).preprocess(hand_in, {"unique_key": "05_scaling"})
    assert [cell.source for cell in skipped.cells] == ["x = 1", "slow = measure(longer=True)",
                                                       f"print({SKIPPED!r})\n", "answer = 2", "assert answer == 2"]


def test_nbgrader_runs_the_two_steps_as_its_config_names_them():
    # nbconvert calls a preprocessor only when it is enabled (off by default); nbgrader builds
    # them by name from the course's config, as here.
    from nbconvert.exporters import NotebookExporter

    exporter = NotebookExporter()
    for name in ("labkit.instructor.demonstrations.SkipDemonstrations",
                 "labkit.instructor.demonstrations.RestoreDemonstrations"):
        exporter.register_preprocessor(name)
        assert exporter._preprocessors[-1].enabled, name
