"""The checks' reference (ONNX Runtime, NumPy preprocessing) answers like the PyTorch service,
is exported once per checkpoint, and keeps torch out of the process that uses it."""

import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from labkit.images import check_images
from labkit.model import reference as reference_module
from labkit.model import weights
from labkit.model.export import sha256
from labkit.model.pixels import pixels
from labkit.model import reference_model
from labkit.model.reference import reference_onnx


def test_numpy_preprocessing_equals_timms_transform_bit_for_bit(reference):
    config = reference_model_config(reference)
    for seed in range(3):
        for name, image in check_images(np.random.default_rng(seed)):
            expected = reference.transform(Image.fromarray(image)).numpy()
            assert np.array_equal(pixels(image, config), expected), (seed, name, image.shape)
    square = np.full((230, 230, 3), 90, np.uint8)
    assert np.array_equal(pixels(square, config), reference.transform(Image.fromarray(square)).numpy())


def reference_model_config(reference) -> dict:
    from labkit.model.export import data_config

    return data_config(reference.model)


@pytest.mark.slow  # exports the reference once (about a minute)
def test_reference_answers_like_pytorch_row_by_row(checkpoint, reference):
    images = [image for _, image in check_images(np.random.default_rng(7))]
    light = reference_model(checkpoint)
    expected = reference.probabilities(images)
    answers = light.probabilities(images)
    assert answers.shape == expected.shape and answers.dtype == np.float32
    np.testing.assert_allclose(answers, expected, rtol=1e-4, atol=1e-8)
    light_labels, light_scores = light.best_labels(images)
    labels, scores = reference.best_labels(images)
    assert (light_labels == labels).all()
    np.testing.assert_allclose(light_scores, scores, rtol=1e-4)


@pytest.mark.slow  # exports the reference once (about a minute)
def test_the_export_is_made_once_per_checkpoint_and_found_again(checkpoint, capsys):
    first = reference_onnx(checkpoint)
    capsys.readouterr()
    started = time.perf_counter()
    assert reference_onnx(checkpoint) == first
    assert time.perf_counter() - started < 2
    assert capsys.readouterr().out == ""  # nothing exported again
    assert first.parent in (checkpoint.parent, weights.DEFAULT_CHECKPOINT.parent)
    assert first.name.startswith("reference-")
    assert reference_module._verified_for(first, sha256(checkpoint))


@pytest.mark.slow  # exports the reference once (about a minute)
def test_a_changed_checkpoint_is_not_answered_by_the_old_export(checkpoint, tmp_path):
    other = weights.write_random_checkpoint(tmp_path / "tinyvit.safetensors", seed=11)
    old = reference_onnx(checkpoint)
    (tmp_path / old.name).write_bytes(old.read_bytes())  # the old export beside another checkpoint
    (tmp_path / f"{old.name}.json").write_bytes(old.with_name(f"{old.name}.json").read_bytes())
    assert not reference_module._verified_for(tmp_path / old.name, sha256(other))


@pytest.mark.slow  # exports the reference once (about a minute)
def test_the_reference_keeps_torch_and_onnx_runtime_out_of_the_kernel(checkpoint):
    reference_onnx(checkpoint)  # exported here first, so the child only loads it
    code = ("import sys\nimport numpy as np\nfrom labkit.images import check_images\n"
            "from labkit.model.reference import reference_model\n"
            f"model = reference_model({str(checkpoint)!r})\n"
            "model.best_labels([image for _, image in check_images()])\n"
            "print(sorted(name for name in ('torch', 'timm', 'torchvision', 'onnxruntime') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow  # exports the reference once (about a minute)
def test_the_child_answers_as_onnx_runtime_here_and_asks_once_per_image(checkpoint, monkeypatch):
    images = [image for _, image in check_images(np.random.default_rng(3))]
    here = reference_module.OnnxReference(reference_onnx(checkpoint))
    light = reference_model(checkpoint)
    children = []
    real_run = subprocess.run
    monkeypatch.setattr(reference_module.subprocess, "run",
                        lambda *args, **kwargs: children.append(args) or real_run(*args, **kwargs))
    # (ONNX Runtime's last digits depend on the batch an image is in)
    np.testing.assert_allclose(light.probabilities(images[:2]), here.probabilities(images[:2]), rtol=1e-5)
    # The same images again, in another order, with a new one: one more child, for the new one only.
    again = light.probabilities([images[1], images[2], images[0]])
    np.testing.assert_allclose(again, here.probabilities([images[1], images[2], images[0]]), rtol=1e-5)
    assert len(children) == 2
    assert light.probabilities(images[:3]).shape == (3, 21841) and len(children) == 2


@pytest.mark.slow  # exports the reference once (about a minute)
def test_an_image_the_reference_cannot_use_is_a_clear_error_not_a_child_traceback(checkpoint):
    light = reference_model(checkpoint)
    with pytest.raises(ValueError, match=r"image 1 .*\[H, W, 3\] uint8"):
        light.probabilities([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32)])


def test_a_process_that_runs_the_checks_itself_asks_onnx_runtime_here_with_the_same_answers(checkpoint, monkeypatch):
    # LAB_CHECK_IN_PROCESS (an isolated check's child, the tests): no child per question, and
    # the same rows, refused images refused alike; a kernel keeps asking a child. The same rows to
    # rounding: ONNX Runtime's threads sum in another order from one session to the next (a run
    # beside other work differed in the 7th digit).
    from labkit import config

    images = [image for _, image in check_images(np.random.default_rng(3))][:3]
    monkeypatch.delenv(config.CHECK_IN_PROCESS, raising=False)
    in_child = reference_model(checkpoint)
    monkeypatch.setenv(config.CHECK_IN_PROCESS, "1")
    here = reference_model(checkpoint)
    assert in_child._here is None and here._here is not None
    answers = here.probabilities(images)
    assert answers.dtype == np.float32
    np.testing.assert_allclose(answers, in_child.probabilities(images), rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="uint8"):
        here.probabilities([images[0].astype(np.float32)])
