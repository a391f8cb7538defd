"""Weights policy: uri (.safetensors, .pth), the clear error, explicit random weights."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from labkit.model import weights
from labkit.client import infer, pixels_request
from labkit.serving import ModelServer, ServerStartError
from tests.helpers.lab import FREE_PORTS, REPO
from tests.helpers.answers import assert_same

QUICK = {"parallel_workers": 0, **FREE_PORTS}


def test_random_checkpoint_is_deterministic_and_marked(tmp_path):
    first = weights.write_random_checkpoint(tmp_path / "a.safetensors", seed=3)
    second = weights.write_random_checkpoint(tmp_path / "b.safetensors", seed=3)
    assert weights.is_random(first)
    # Other users read it on a shared hub (one checkpoint for the class); only root writes it.
    assert first.stat().st_mode & 0o777 == 0o644
    first_state, second_state = load_file(first), load_file(second)
    assert first_state.keys() == second_state.keys()
    assert all(torch.equal(first_state[name], second_state[name]) for name in first_state)


def test_labels_come_from_timm_imagenet22k():
    labels = weights.labels()
    assert len(labels) == 21841
    assert any("tabby" in label for label in labels)


def test_load_model_without_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(weights.WeightsNotFound, match="make weights"):
        weights.load_model(tmp_path / "missing.safetensors")


def model_folder_without_uri(tmp_path):
    folder = tmp_path / "tinyvit"
    shutil.copytree(REPO / "tinyvit", folder, ignore=shutil.ignore_patterns("__pycache__"))
    settings = json.loads((folder / "model-settings.json").read_text())
    settings.pop("parameters")
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder


@pytest.mark.slow
def test_random_weights_only_when_asked_and_loudly_and_a_pth_checkpoint_through_uri(tmp_path, checkpoint,
                                                                                   reference, cat):
    # One server, its model loaded three ways (reload(): the same process, seconds each).
    server = ModelServer(model_folder_without_uri(tmp_path), **QUICK, extra={"allow_random_weights": True},
                         env={"TINYVIT_ALLOW_RANDOM_WEIGHTS": "", "HF_HOME": str(tmp_path / "hf")})
    with server:
        assert infer(server.infer_url, pixels_request([cat])).shape == (1, 21841)
        assert "RANDOM weights" in server.log

        # No checkpoint, random weights not allowed: the load fails and says how to get one.
        with pytest.raises(ServerStartError) as caught:
            server.reload(extra={})
        assert "run `make weights` once while online" in str(caught.value)

        pth = tmp_path / "tinyvit.pth"
        torch.save(weights.load_model(checkpoint).state_dict(), pth)
        server.reload(weights=pth)
        assert_same(infer(server.infer_url, pixels_request([cat])), reference.probabilities([cat]))


@pytest.mark.slow
def test_random_checkpoint_through_uri_is_announced_in_the_log(server_without_workers):
    assert "RANDOM weights" in server_without_workers.log


def test_the_labels_read_without_timm_are_timms():
    from timm.data import ImageNetInfo

    from labkit.model import weights

    info = ImageNetInfo("imagenet-22k")
    assert weights.labels() == tuple(info.index_to_description(index) for index in range(info.num_classes()))
