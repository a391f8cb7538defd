"""labkit.checks.build_folder: notebook 06's build folder, the Dockerfile MLServer writes and what the
image needs; a right answer passes, each plausible mistake fails with a message that names it."""

import shutil

import pytest

from labkit import checks
from labkit.serving import packaging, terminal
from labkit.workspace import lab_service_copy
from tests.helpers.solutions import solution_cell, written


def test_the_image_folder_needs_the_dockerfile_mlserver_writes(shipped, checkpoint, capsys):
    checks.requirements(shipped)
    service = lab_service_copy(shipped.parent / "service", checkpoint=checkpoint, with_settings=True)
    shutil.copy(shipped / "requirements.txt", service / "requirements.txt")
    context = packaging.build_context(service, target=shipped.parent / "context", checkpoint=checkpoint,
                                      dockerfile=False)
    assert not (context / packaging.WEIGHTS_NAME).is_symlink()
    with pytest.raises(checks.CheckFailed, match="has no Dockerfile"):
        checks.image_folder(context)
    terminal(f"mlserver dockerfile {context}")
    assert "Successfully written Dockerfile" in capsys.readouterr().out
    checks.image_folder(context)
    # helper session 12: an ignore file that leaves out what the image needs was not read.
    (context / ".dockerignore").write_text("__pycache__\n*.safetensors\n")
    with pytest.raises(checks.CheckFailed, match=r"\.dockerignore leaves out tinyvit\.safetensors \(its line "
                       r"'\*\.safetensors'\): Docker would build the image without the weights"):
        checks.image_folder(context)
    (context / ".dockerignore").unlink()
    # Exercise 1's mistake costs Exercise 1 only: the build folder is still right.
    (context / "requirements.txt").write_text("torch\n")
    checks.image_folder(context)
    (context / packaging.WEIGHTS_NAME).unlink()
    with pytest.raises(checks.CheckFailed, match="no weights"):
        checks.image_folder(context)


def test_the_image_folder_check_wants_mlservers_dockerfile_and_spares_exercise_1s_mistake(tmp_path, checkpoint,
                                                                                         monkeypatch, capsys):
    # helper session 5: a hand-written Dockerfile with MLServer's base image passed; a requirements
    # file written to the wrong place cost this check too. As notebook 06: the student's shipped/
    # next to the notebook, the build folder a copy of it elsewhere, under the same name.
    notebook = tmp_path / "notebook"
    service = lab_service_copy(notebook / "shipped", checkpoint=checkpoint, with_settings=True)
    monkeypatch.chdir(notebook)
    context = packaging.build_context(service, target=tmp_path / "build" / "shipped", checkpoint=checkpoint,
                                      dockerfile=False)
    (context / "Dockerfile").write_text("FROM seldonio/mlserver:1.7.1-slim\nCOPY requirements.txt .\n"
                                        "RUN pip install -r requirements.txt\n")
    with pytest.raises(checks.CheckFailed, match="not the one MLServer 1.7.1 writes: the copy of the build folder "
                       "into the image, the command that starts MLServer on the models are missing"):
        checks.image_folder(context)
    (context / "Dockerfile").unlink()
    terminal(f"mlserver dockerfile {context}")
    assert not (service / "requirements.txt").exists() and not (context / "requirements.txt").exists()
    checks.image_folder(context)  # Exercise 1's file was never written: its own check counts it
    assert "not charged here" in capsys.readouterr().out
    (service / "requirements.txt").write_text(written(solution_cell("06_packaging.ipynb", "requirements")))
    with pytest.raises(checks.CheckFailed, match="the folder was built before it"):
        checks.image_folder(context)
    shutil.copy(service / "requirements.txt", context / "requirements.txt")
    checks.image_folder(context)
    # helper session 13: a comment added, or the lines sorted, after the build is the same list.
    requirements = (service / "requirements.txt").read_text()
    (service / "requirements.txt").write_text("# the service's packages\n" + "\n".join(sorted(
        requirements.splitlines())) + "\n")
    checks.image_folder(context)
    # helper session 12: requirements fixed in shipped/ after the build folder was made.
    (service / "requirements.txt").write_text((service / "requirements.txt").read_text() + "pandas==2.3.3\n")
    with pytest.raises(checks.CheckFailed, match=r"is not shipped/requirements.txt as it is now \(it lacks pandas\): "
                       "the folder was built before your last change"):
        checks.image_folder(context)
    # helper session 14: the same packages spelt otherwise were named as an older list
    (service / "requirements.txt").write_text(requirements.replace("pillow==13.0.0", "Pillow == 13.0.0").replace(
        "mlserver==1.7.1", "MLServer==1.7.1"))
    assert "Pillow == 13.0.0" in (service / "requirements.txt").read_text()
    checks.image_folder(context)
    (service / "requirements.txt").write_text(requirements.replace("pillow==13.0.0", "pillow>=13.0.0"))
    with pytest.raises(checks.CheckFailed, match=r"\(pillow asked for otherwise\)"):
        checks.image_folder(context)
