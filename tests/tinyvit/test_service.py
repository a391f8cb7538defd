"""The TinyViT service on a real MLServer over loopback: contract, answers, bad input."""

import json

import numpy as np
import pytest
import requests
from mlserver.types import InferenceRequest

from tests.helpers.answers import assert_same, decode_jpeg
from tests.helpers.bad_inputs import BAD_INPUTS, pixels_body
from labkit.client import (InferenceFailed, encode_jpeg, files_request, infer, infer_grpc,
                           pixels_request, request_body)

pytestmark = pytest.mark.slow


def test_metadata_names_the_contract(server):
    metadata = requests.get(server.model_url, timeout=10).json()
    assert metadata["name"] == "tinyvit"
    assert metadata["inputs"] == [{"name": "payload", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 21841]}]
    ready = requests.get(f"{server.model_url}/ready", timeout=10)
    assert ready.status_code == 200


@pytest.mark.parametrize("count", [1, 3])
def test_pixels_batch_matches_in_process_model(server, reference, cat, count):
    images = [np.roll(cat, shift, axis=1) for shift in range(count)]
    answer = infer(server.infer_url, pixels_request(images))
    assert answer.dtype == np.float32
    assert answer.shape == (count, 21841)
    np.testing.assert_allclose(answer.sum(axis=1), 1.0, rtol=1e-4)
    assert_same(answer, reference.probabilities(images))


def test_encoded_images_of_mixed_sizes(server, reference, cat):
    images = [cat, cat[:200, :300], cat[50:, 100:]]
    files = [encode_jpeg(image) for image in images]
    decoded = [decode_jpeg(data) for data in files]
    answer = infer(server.infer_url, files_request(files))
    assert_same(answer, reference.probabilities(decoded))


def test_grpc_gives_the_same_answer(server, reference, cat):
    answer = infer_grpc(server.grpc_address, server.name, pixels_request([cat]))
    assert_same(answer, reference.probabilities([cat]))


def test_grpc_takes_encoded_images_too(server, reference, cat):
    jpeg = encode_jpeg(cat)
    answer = infer_grpc(server.grpc_address, server.name, files_request([jpeg, jpeg]))
    assert_same(answer, reference.probabilities([decode_jpeg(jpeg)] * 2))


def _raw(server, body) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.infer_url, data=data, timeout=30,
                         headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_gets_4xx_with_a_message_and_server_keeps_serving(server, cat, case):
    body, expected_text = BAD_INPUTS[case]
    answer = _raw(server, body)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert expected_text in answer.text
    assert infer(server.infer_url, pixels_request([cat])).shape == (1, 21841)


def test_client_refuses_a_3d_image_before_sending(cat):
    with pytest.raises(ValueError, match="batch axis"):
        pixels_request(cat)


def test_error_answer_surfaces_the_server_message(server):
    request = InferenceRequest.model_validate(pixels_body([1, 4, 4, 3], datatype="INT32"))
    with pytest.raises(InferenceFailed, match="datatype INT32") as caught:
        infer(server.infer_url, request)
    assert caught.value.status == 400


def test_request_body_uses_model_dump_json(cat):
    body = json.loads(request_body(files_request([encode_jpeg(cat)])))
    assert body["inputs"][0]["datatype"] == "BYTES"
    assert isinstance(body["inputs"][0]["data"][0], str)


def test_batch_size_metric_counts_images_per_predict_call(server, cat):
    infer(server.infer_url, pixels_request([cat, cat]))
    metrics = requests.get(server.metrics_url, timeout=10).text
    count = [line for line in metrics.splitlines() if line.startswith("tinyvit_batch_size_count")]
    total = [line for line in metrics.splitlines() if line.startswith("tinyvit_batch_size_sum")]
    assert count and total, "tinyvit_batch_size missing from /metrics"
    assert float(total[0].split()[-1]) >= 2


def test_a_grpc_error_names_its_grpc_code_not_http(server):
    request = InferenceRequest.model_validate(pixels_body([1, 4, 4, 3], datatype="INT32"))
    with pytest.raises(InferenceFailed, match=r"^gRPC [A-Z_]+: .*datatype INT32") as caught:
        infer_grpc(server.grpc_address, server.name, request)
    assert caught.value.protocol == "gRPC"
