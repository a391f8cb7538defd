"""The serving benchmark's peers, NVIDIA Triton (PyTriton) and LitServe with the lab's engine, when
`make peers` built their environments (an optional extra: without one its test skips, also under
CI=true). Each answers the lab's client like the reference, and leaves no process of its own behind;
Triton (labkit.serving.triton, which notebook 05 starts too) also answers notebook 02's pixel requests."""

import json
import time

import numpy as np
import psutil
import pytest
import requests

from benchmarks import peers
from benchmarks.tuned import verified_onnx
from labkit.checks import distinct_images
from labkit.client import files_request, infer, pixels_request
from labkit.measure import payload_body, run_load
from labkit.model.weights import DEFAULT_CHECKPOINT
from labkit.model import reference_model

pytestmark = pytest.mark.slow


def outlived(group: list[psutil.Process], seconds: float = 10) -> list[psutil.Process]:
    """The processes of ``group`` still running ``seconds`` after their peer was stopped (a
    zombie has ended: it waits only for a parent to collect its exit status)."""
    def alive(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + seconds
    while any(alive(process) for process in group) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [process for process in group if alive(process)]


def assert_like_reference(answer: np.ndarray, images: list) -> None:
    """A peer's probabilities, one row per image, are the reference's (the same engine and preprocessing)."""
    expected = reference_model().probabilities(images)
    assert answer.shape == expected.shape == (len(images), 21841)
    np.testing.assert_allclose(answer, expected, rtol=1e-3, atol=1e-6)
    assert (answer.argmax(axis=1) == expected.argmax(axis=1)).all()


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
        # Notebook 02's pixel request, as notebook 05 sends it: one image per request (images of
        # different sizes), over REST and gRPC, to the model named as MLServer's service is.
        pixels_url = triton.infer_url.replace(f"/{triton.model}/", "/tinyvit/")
        over_rest = np.concatenate([infer(pixels_url, pixels_request([image])) for image in images])
        over_grpc = np.concatenate([grpc_infer(triton.grpc_address, image) for image in images])
        refused = requests.post(pixels_url, json={"inputs": [{"name": "payload", "shape": [1, 2, 2, 3],
                                                              "datatype": "FP32", "data": [0.0] * 12}]}, timeout=30)
        group = psutil.Process(triton.pid).children(recursive=True)  # its own, not another student's
        commands = [" ".join(process.cmdline()) for process in group]
    assert len({image.shape for image in images}) > 1
    for answer_of_client in (answer, over_rest, over_grpc):
        assert_like_reference(answer_of_client, images)
    assert refused.status_code == 400 and "UINT8" in refused.text, refused.text
    assert grpc_load["requests"] > 0 and grpc_load["errors"] == 0, json.dumps(grpc_load)
    assert any("tritonserver" in command for command in commands), "no tritonserver ran"
    assert not outlived(group), "Triton outlived its peer"


def grpc_infer(address: str, image: np.ndarray) -> np.ndarray:
    """Notebook 02's gRPC request (MLServer's converters) for one image."""
    import grpc
    from mlserver.codecs import NumpyCodec
    from mlserver.grpc import dataplane_pb2_grpc
    from mlserver.grpc.converters import ModelInferRequestConverter, ModelInferResponseConverter
    from mlserver.types import InferenceRequest

    request = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", image[np.newaxis])])
    message = ModelInferRequestConverter.from_types(request, model_name="tinyvit", model_version=None)
    with grpc.insecure_channel(address) as channel:
        reply = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(message, timeout=60)
    return NumpyCodec.decode_output(ModelInferResponseConverter.to_types(reply).outputs[0])


def test_litserve_answers_the_lab_clients_like_the_reference_and_leaves_nothing_behind():
    reason = peers.missing("litserve")
    if reason:
        pytest.skip(reason)  # an optional extra: not a failure under CI=true
    _, images, files = distinct_images(3, jpeg=True)
    with peers.litserve(verified_onnx(DEFAULT_CHECKPOINT)) as litserve:
        # The lab's REST client, unchanged, one image per request (what this peer takes).
        answer = np.concatenate([infer(litserve.infer_url, files_request([file])) for file in files])
        refused = requests.post(litserve.infer_url, json={"inputs": [{"name": "payload", "data": ["not base64!"]}]},
                                timeout=30)
        load = run_load(litserve.infer_url, 2, duration=1, body=payload_body("jpeg"), progress=False).summary
        group = [psutil.Process(litserve.pid), *psutil.Process(litserve.pid).children(recursive=True)]
    assert_like_reference(answer, images)
    assert refused.status_code == 400 and "base64" in refused.text, refused.text
    assert load["requests"] > 0 and load["errors"] == 0, json.dumps(load)
    assert not outlived(group), "LitServe outlived its peer"


def test_triton_refuses_a_model_the_export_did_not_verify_and_says_what_to_run(tmp_path):
    from labkit.serving import triton

    reason = triton.missing()
    if reason:
        pytest.skip(reason)  # an optional extra: not a failure under CI=true
    (tmp_path / "tinyvit.onnx").write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 2:.*no verification record.*make onnx"):
        with triton.serve(tmp_path / "tinyvit.onnx"):
            pass
