"""The TinyViT service on a real MLServer over loopback: contract, answers, bad input."""

import base64
import io
import json

import numpy as np
import pytest
import requests
from mlserver.types import InferenceRequest
from PIL import Image

from labkit.client import (InferenceFailed, encode_jpeg, files_request, infer, infer_grpc,
                           pixels_request, request_body)

pytestmark = pytest.mark.slow


def decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def assert_same(answer, expected):
    assert answer.shape == expected.shape
    np.testing.assert_allclose(answer, expected, rtol=1e-3, atol=1e-6)
    assert (answer.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_metadata_names_the_contract(server):
    metadata = requests.get(server.model_url, timeout=10).json()
    assert metadata["name"] == "tinyvit"
    assert metadata["platform"] == "" or isinstance(metadata["platform"], str)
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


def _pixels(shape, data=None, datatype="UINT8", name="payload"):
    size = int(np.prod(shape))
    return {"inputs": [{"name": name, "shape": list(shape), "datatype": datatype,
                        "data": data if data is not None else [7] * size}]}


def png_bytes(width, height) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


BAD_INPUTS = {
    "3-D image without batch axis": (_pixels([8, 8, 3]), "[N, H, W, 3]"),
    "wrong datatype": (_pixels([1, 8, 8, 3], datatype="FP32"), "datatype FP32"),
    "wrong input name": (_pixels([1, 8, 8, 3], name="image"), "payload"),
    "shape/data mismatch": (_pixels([2, 8, 8, 3], data=[7] * 100), "needs 384 values"),
    "empty batch": (_pixels([0, 8, 8, 3], data=[]), "empty"),
    "zero-size image": (_pixels([1, 0, 0, 3], data=[]), "outside"),
    "values out of range": (_pixels([1, 2, 2, 3], data=[300] * 12), "0..255"),
    "NaN pixels": ('{"inputs":[{"name":"payload","shape":[1,1,1,3],"datatype":"UINT8","data":[NaN,1,2]}]}', ""),
    "undecodable bytes": ({"inputs": [{"name": "payload", "shape": [1], "datatype": "BYTES",
                                       "parameters": {"content_type": "base64"},
                                       "data": [base64.b64encode(b"not an image").decode()]}]},
                          "not a PNG/JPEG"),
    "bytes shape mismatch": ({"inputs": [{"name": "payload", "shape": [3], "datatype": "BYTES",
                                          "parameters": {"content_type": "base64"},
                                          "data": [base64.b64encode(b"x").decode()]}]},
                             "shape [N]"),
    "image too large (declared shape)": (_pixels([1, 5000, 5000, 3], data=[]), "outside 1..4096"),
    "image too large (encoded file)": ({"inputs": [{"name": "payload", "shape": [1], "datatype": "BYTES",
                                                    "parameters": {"content_type": "base64"},
                                                    "data": [base64.b64encode(png_bytes(5000, 2)).decode()]}]},
                                       "limit is 4096"),
    "truncated JSON": ('{"inputs": [{"name": "payload", "shape": [1, 8', ""),
}


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
    request = InferenceRequest.model_validate(_pixels([1, 4, 4, 3], datatype="INT32"))
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
