"""labkit.runtimes.timm.TimmClassifier: a model served by configuration alone, on a real MLServer."""

import json
import shutil

import numpy as np
import pytest
import requests

from labkit import checks
from labkit.client import encode_jpeg, files_request, infer_outputs, pixels_request
from labkit.serving import ModelServer, ServerStartError
from labkit.workspace import CHECKPOINT_LINK, link_checkpoint
from tests.helpers.lab import FREE_PORTS, REPO
from tests.helpers.answers import decode_jpeg

pytestmark = pytest.mark.slow


def runtime_folder(tmp_path, checkpoint, **extra):
    """runtimes/tinyvit-timm as a student's folder: the checkpoint linked inside it (a uri that
    leaves the folder, as the lab's own one does, is what notebook 04's check refuses)."""
    folder = tmp_path / "tinyvit-timm"
    shutil.copytree(REPO / "runtimes" / "tinyvit-timm", folder)
    link_checkpoint(folder, checkpoint)
    settings = json.loads((folder / "model-settings.json").read_text())
    settings["parameters"]["uri"] = CHECKPOINT_LINK
    settings["parameters"]["extra"].update(extra)
    for key in [key for key, value in extra.items() if value is None]:
        settings["parameters"]["extra"].pop(key)
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder


def test_top_k_labels_and_scores_match_the_in_process_model(tmp_path, checkpoint, reference, cat):
    folder = runtime_folder(tmp_path, checkpoint, top_k=3)
    with ModelServer(folder, parallel_workers=0, **FREE_PORTS) as server:
        images = [cat, cat[:200, :250]]
        files = [encode_jpeg(image) for image in images]
        outputs = infer_outputs(server.infer_url, files_request(files))
        labels, scores = reference.best_labels([decode_jpeg(data) for data in files], k=3)
        assert outputs["labels"].shape == (2, 3)
        assert (outputs["labels"] == labels).all()
        np.testing.assert_allclose(outputs["scores"], scores, rtol=1e-3)
        bad = requests.post(server.infer_url, json={"inputs": [{"name": "payload", "shape": [8, 8, 3],
                                                                "datatype": "UINT8", "data": [0] * 192}]})
        assert bad.status_code == 400 and "[N, H, W, 3]" in bad.text
        assert infer_outputs(server.infer_url, pixels_request([cat]))["scores"].shape == (1, 3)
        # Notebook 04's exercise check on the same server: right answers pass; a wrong
        # top_k or model name is named.
        checks.runtime_top_k(server, name="tinyvit-timm", k=3, checkpoint=checkpoint)
        with pytest.raises(checks.CheckFailed, match="answers 3 labels per image; the exercise asks for 5"):
            checks.runtime_top_k(server, name="tinyvit-timm", k=5, checkpoint=checkpoint)
        with pytest.raises(checks.CheckFailed, match="named 'tinyvit-timm'; the exercise asks for 'top3'"):
            checks.runtime_top_k(server, checkpoint=checkpoint)

        # Without a timm model name the load fails with a clear error (loaded again in place).
        settings = json.loads((folder / "model-settings.json").read_text())
        settings["parameters"]["extra"].pop("model")
        (folder / "model-settings.json").write_text(json.dumps(settings))
        with pytest.raises(ServerStartError, match="parameters.extra.model"):
            server.reload()


def test_hf_model_folder_is_the_course_texts_runtime_on_a_local_artifact(tmp_path, checkpoint):
    from labkit.model import hf_service

    folder = hf_service.hf_model_folder(tmp_path / "hf")
    settings = json.loads((folder / "model-settings.json").read_text())
    assert settings["implementation"] == "labkit.runtimes.huggingface.HuggingFaceRuntime"
    extra = settings["parameters"]["extra"]
    assert extra["task"] == "image-classification" and extra["optimum_model"] is False
    assert "uri" not in settings["parameters"] and "pretrained_model" not in extra  # the folder itself
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architecture"] == "tiny_vit_5m_224" and config["num_classes"] == 21841
    assert "num_classes" not in config["model_args"], "transformers passes num_classes itself"
