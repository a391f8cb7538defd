"""MLServer's Hugging Face runtime of the course text (notebook 04), in its own environment
(``make hf-runtime``: .venv-hf, 9.2 GB, about 2.4 minutes to install): TinyViT from a local
folder, with ``optimum_model`` false and true, answers the same top 5 as the lab's model on
the same images. An optional extra for students; `make test` installs it, so CI runs these."""

import subprocess

import numpy as np
import pytest
import requests

from labkit.checks import distinct_images
from labkit.model import hf_service
from labkit.model import in_process_model
from labkit.serving import ModelServer
from tests.helpers.lab import FREE_PORTS, skip_unless_ci

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def hf_environment():
    # make test installs it (make hf-runtime); run alone without it, these tests skip, under CI they
    # fail, unless make test found no room on the disk for this optional extra and said so.
    if not hf_service.HF_PYTHON.exists():
        if hf_service.HF_SKIPPED.is_file():
            pytest.skip(f"not installed by make test: {hf_service.HF_SKIPPED.read_text().strip()}")
        skip_unless_ci("no .venv-hf: `make hf-runtime` installs the optional Hugging Face runtime")


def test_the_stock_runtime_does_not_import_with_a_transformers_that_reads_timm_folders():
    # Why labkit.runtimes.huggingface exists: mlserver-huggingface 1.7.1 imports a class that
    # transformers removed in 4.42, and only transformers 4.48+ loads a timm config.json.
    stock = subprocess.run([str(hf_service.HF_PYTHON), "-c", "import mlserver_huggingface"],
                           capture_output=True, text=True, timeout=300)
    assert stock.returncode != 0 and "cannot import name 'Conversation'" in stock.stderr, stock.stderr[-500:]


@pytest.mark.parametrize("optimum_model", [False, True])
def test_the_runtime_serves_tinyvit_from_a_local_folder_like_the_lab(tmp_path, checkpoint, optimum_model):
    folder = hf_service.hf_model_folder(tmp_path / "tinyvit-hf", optimum_model=optimum_model)
    _, decoded, files = distinct_images(2, checkpoint, jpeg=True)
    with ModelServer(folder, python=hf_service.HF_PYTHON, **FREE_PORTS) as server:
        answer = requests.post(server.infer_url, json=hf_service.hf_request(files), timeout=120)
        assert answer.ok, answer.text
    rows = hf_service.hf_top_labels(answer.json())
    labels, scores = in_process_model(checkpoint).best_labels(decoded, k=5)
    assert len(rows) == 2
    for row, expected_labels, expected_scores in zip(rows, labels, scores):
        assert [label for label, _ in row] == list(expected_labels)
        np.testing.assert_allclose([score for _, score in row], expected_scores, rtol=1e-3)
