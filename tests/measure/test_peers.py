"""The serving benchmark's peer: NVIDIA Triton (PyTriton) with the lab's engine, when `make peers`
built its environment (an optional extra: without it the test skips, also under CI=true)."""

import json

import numpy as np
import psutil
import pytest

from benchmarks import peers
from benchmarks.serving import verified_onnx
from labkit.checks.common import distinct_images
from labkit.client import files_request, infer
from labkit.measure.loadgen import payload_body, run_load
from labkit.model.weights import DEFAULT_CHECKPOINT
from labkit.model.reference import reference_model

pytestmark = pytest.mark.slow


def test_triton_answers_the_lab_clients_like_the_reference_and_leaves_nothing_behind():
    reason = peers.missing("triton")
    if reason:
        pytest.skip(reason)  # an optional extra: not a failure under CI=true
    _, images, files = distinct_images(3, jpeg=True)
    with peers.triton(verified_onnx(DEFAULT_CHECKPOINT)) as triton:
        # The lab's REST client, unchanged: the Open Inference Protocol is Triton's.
        answer = infer(triton.infer_url, files_request(files))
        grpc_load = run_load(triton.grpc_address, 2, duration=1, body=payload_body("jpeg"),
                             grpc_model=triton.model, progress=False).summary
        group = [process for process in psutil.process_iter(["cmdline"])
                 if "tritonserver" in " ".join(process.info["cmdline"] or [])]
    assert answer.shape == (3, 21841)
    expected = reference_model().probabilities(images)
    np.testing.assert_allclose(answer, expected, rtol=1e-3, atol=1e-6)
    assert (answer.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert grpc_load["requests"] > 0 and grpc_load["errors"] == 0, json.dumps(grpc_load)
    assert group, "no tritonserver process ran"
    assert not [process for process in group if process.is_running()], "Triton outlived its peer"
