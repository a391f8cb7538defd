"""Malformed TinyViT requests and the words of the 400 each must get: one table for the
in-process layer (tests/tinyvit/test_service_inprocess.py) and the live server (tests/tinyvit/test_service.py)."""

import base64
import io

import numpy as np
from PIL import Image

# Rejected by MLServer's JSON parsing before the service sees them: live tests only.
PARSE_ERRORS = ("NaN pixels", "truncated JSON")


def pixels_body(shape, data=None, datatype="UINT8", name="payload"):
    size = int(np.prod(shape))
    return {"inputs": [{"name": name, "shape": list(shape), "datatype": datatype,
                        "data": data if data is not None else [7] * size}]}


def png_bytes(width, height) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


BAD_INPUTS = {
    "3-D image without batch axis": (pixels_body([8, 8, 3]), "Add the leading batch axis"),
    # helper session 15: told to add a batch axis that was there
    "channels first": (pixels_body([1, 3, 8, 8]), "the colour axis comes first"),
    "grayscale": (pixels_body([1, 8, 8]), "send RGB images"),
    "wrong datatype": (pixels_body([1, 8, 8, 3], datatype="FP32"), "datatype FP32"),
    "wrong input name": (pixels_body([1, 8, 8, 3], name="image"), "payload"),
    "shape/data mismatch": (pixels_body([2, 8, 8, 3], data=[7] * 100), "needs 384 values"),
    "empty batch": (pixels_body([0, 8, 8, 3], data=[]), "empty"),
    "zero-size image": (pixels_body([1, 0, 0, 3], data=[]), "outside"),
    "values out of range": (pixels_body([1, 2, 2, 3], data=[300] * 12), "0..255"),
    "NaN pixels": ('{"inputs":[{"name":"payload","shape":[1,1,1,3],"datatype":"UINT8","data":[NaN,1,2]}]}', ""),
    "undecodable bytes": ({"inputs": [{"name": "payload", "shape": [1], "datatype": "BYTES",
                                       "parameters": {"content_type": "base64"},
                                       "data": [base64.b64encode(b"not an image").decode()]}]},
                          "not a PNG/JPEG"),
    "bytes shape mismatch": ({"inputs": [{"name": "payload", "shape": [3], "datatype": "BYTES",
                                          "parameters": {"content_type": "base64"},
                                          "data": [base64.b64encode(b"x").decode()]}]},
                             "shape [N]"),
    "image too large (declared shape)": (pixels_body([1, 5000, 5000, 3], data=[]), "outside 1..4096"),
    "image too large (encoded file)": ({"inputs": [{"name": "payload", "shape": [1], "datatype": "BYTES",
                                                    "parameters": {"content_type": "base64"},
                                                    "data": [base64.b64encode(png_bytes(5000, 2)).decode()]}]},
                                       "limit is 4096"),
    "truncated JSON": ('{"inputs": [{"name": "payload", "shape": [1, 8', ""),
}


