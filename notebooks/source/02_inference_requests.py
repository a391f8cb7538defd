# %% [markdown]
# # 02 · Inference requests
#
# The service from notebook 01 is running software that speaks the **Open Inference
# Protocol** (V2). In this notebook you build requests by hand, send them with `requests`,
# and read the answers: first the way the course text does it (NumPy pixels), then two
# better ways (compact JPEG bytes, gRPC).

# %%
from labkit import show
from labkit.server import ModelServer

random_weights = show.weights_banner()
server = ModelServer("tinyvit").start()
server

# %% [markdown]
# ## An image as a NumPy array
#
# PIL opens the photo, NumPy turns it into an array of pixels: height × width × 3 colour
# channels, one byte each.

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np
from PIL import Image

from labkit.client import CAT

image = np.asarray(Image.open(CAT).convert("RGB"))
print(image.shape, image.dtype)

# %%
Image.open(CAT)

# %% [markdown]
# ## The leading batch axis
#
# The service takes a **batch** of images, `[N, H, W, 3]`, even when `N` is 1. This is not
# pedantry: with adaptive batching (notebook 05) MLServer glues the requests of several
# clients together along the first axis. An `[H, W, 3]` image would be glued into one tall
# image and every client would get someone else's answer. `image[None]` adds the axis.

# %%
# NBVAL_CHECK_OUTPUT
batch = image[None]
print(batch.shape)

# %% [markdown]
# ## Encode it with `NumpyCodec`
#
# A *codec* turns Python data into the protocol's tensors: a name, a shape, a datatype and a
# flat list of values. `NumpyCodec.encode_input` reads the shape and datatype off the array.

# %%
# NBVAL_CHECK_OUTPUT
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest

request_input = NumpyCodec.encode_input(name="payload", payload=batch)
inference_request = InferenceRequest(inputs=[request_input])
print("name:    ", request_input.name)
print("shape:   ", request_input.shape)
print("datatype:", request_input.datatype)
print("values:  ", len(request_input.data), "=", " × ".join(map(str, batch.shape)))

# %% [markdown]
# ## Send it
#
# `POST /v2/models/tinyvit/infer` with the request as JSON. The course text writes
# `inference_request.dict()`; in MLServer 1.7 (pydantic 2) that method is deprecated, use
# `model_dump()`.

# %%
import requests

response = requests.post(server.infer_url, json=inference_request.model_dump(), timeout=60)
response.status_code

# %% [markdown]
# The answer is JSON too: the model name, and a list of outputs, each with its own name,
# shape and datatype.

# %%
# NBVAL_CHECK_OUTPUT
answer = response.json()
print("model:", answer["model_name"])
for output in answer["outputs"]:
    print(f"output {output['name']!r}: shape {output['shape']}, datatype {output['datatype']}, "
          f"{len(output['data'])} values")

# %% [markdown]
# `NumpyCodec` decodes the output back into an array: one row of 21,841 probabilities (one
# per ImageNet-22k class) for our one image. Probabilities sum to 1.

# %%
# NBVAL_CHECK_OUTPUT
from mlserver.types import InferenceResponse

probabilities = NumpyCodec.decode_output(InferenceResponse.model_validate(answer).outputs[0])
print(probabilities.shape, probabilities.dtype, "sum:", round(float(probabilities.sum()), 3))

# %% [markdown]
# ## A batch of two
#
# Two images of the same size stack into `[2, H, W, 3]`; the answer has one row per image.

# %%
# NBVAL_CHECK_OUTPUT
from labkit.client import infer, pixels_request

two = np.stack([image, np.fliplr(image)])
print("request shape:", two.shape)
print("answer shape: ", infer(server.infer_url, pixels_request(two)).shape)

# %% [markdown]
# `labkit.client.infer` and `pixels_request` do exactly what the cells above did by hand
# (encode, post, check the status, decode); the rest of the lab uses them.
#
# ## Exercise: the cat's top class
#
# Using `probabilities` from above, set `top_index` to the index (an `int`) of the most
# probable class for the cat image.

# %% solution id=top-class
### BEGIN SOLUTION
top_index = int(probabilities[0].argmax())
### END SOLUTION
top_index

# %% tests id=top-class-check points=1
from labkit import checks

checks.top_class_index(top_index)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `probabilities` has shape `[1, 21841]`: take the first row, then `argmax()`.
# </details>
#
# ## The same request without MLServer on the client
#
# A client in another language has no `NumpyCodec`. The protocol is plain JSON, so you can
# write the body yourself: this is all a codec does.

# %%
# NBVAL_CHECK_OUTPUT
body = {
    "inputs": [{
        "name": "payload",
        "shape": list(batch.shape),
        "datatype": "UINT8",
        "data": batch.ravel().tolist(),
    }]
}
raw = requests.post(server.infer_url, json=body, timeout=60).json()
raw_probabilities = np.array(raw["outputs"][0]["data"], dtype=np.float32).reshape(raw["outputs"][0]["shape"])
print("same answer as with NumpyCodec:", np.allclose(raw_probabilities, probabilities))

# %% [markdown]
# ## Compact payloads: JPEG bytes instead of pixels
#
# The pixel request spells out every byte of the image as a decimal number in JSON. The file
# itself is much smaller. The service also accepts encoded images: datatype `BYTES`, one
# file per element, base64 in JSON (`content_type: base64`). Images in one batch may then
# have different sizes. Compare the two side by side (sizes and the median of a few calls;
# your numbers will differ, the ratio is what matters).

# %%
import time

import pandas as pd

from labkit.client import encode_jpeg, files_request, request_body

jpeg = encode_jpeg(image)
payloads = {"pixels (NumPy JSON)": pixels_request([image]), "JPEG bytes (base64)": files_request([jpeg])}


def median_latency_ms(request, repeats=5):
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        infer(server.infer_url, request)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.median(timings))


comparison = pd.DataFrame({
    "request size (KB)": {name: len(request_body(request)) / 1024 for name, request in payloads.items()},
    "median latency (ms)": {name: median_latency_ms(request) for name, request in payloads.items()},
}).round(1)
comparison

# %%
import matplotlib.pyplot as plt

figure, axes = plt.subplots(1, 2, figsize=(9, 3))
for axis, column in zip(axes, comparison.columns):
    comparison[column].plot.barh(ax=axis, color=["#f9ab00", "#188038"], title=column)
figure.tight_layout()

# %% [markdown]
# Both payloads describe the same picture, so the answers agree:

# %%
# NBVAL_CHECK_OUTPUT
import io

from labkit.client import load_image

decoded = load_image(io.BytesIO(jpeg))
jpeg_top = infer(server.infer_url, files_request([jpeg]))[0].argmax()
pixels_of_jpeg_top = infer(server.infer_url, pixels_request([decoded]))[0].argmax()
print("JPEG request and its decoded pixels agree:", jpeg_top == pixels_of_jpeg_top)

# %% [markdown]
# ## gRPC
#
# MLServer serves the same protocol over gRPC (port 8081 by default): binary protobuf
# messages instead of JSON, on a long-lived HTTP/2 connection. The request is built the
# same way; `labkit.client.infer_grpc` converts it with MLServer's own converters.

# %%
# NBVAL_CHECK_OUTPUT
from labkit.client import infer_grpc

grpc_probabilities = infer_grpc(server.grpc_address, "tinyvit", pixels_request([image]))
print(grpc_probabilities.shape, "same top class as REST:", grpc_probabilities[0].argmax() == top_index)

# %% [markdown]
# ## Where the course text needs a correction
#
# * `InferenceRequest.dict()` is deprecated in MLServer 1.7: use `model_dump()` (or
#   `model_dump_json()`, which also turns bytes into JSON-safe strings).
# * Send images with a leading batch axis, `[N, H, W, 3]`; a bare `[H, W, 3]` image gets a 400
#   here, and silently wrong answers under adaptive batching in a naive service.
# * Wait for `/v2/models/<name>/ready`, not `/v2/health/ready`, before the first request.
#
# Stop the server:

# %%
# NBVAL_CHECK_OUTPUT
server.stop()
print("running:", server.running)

# %% [markdown]
# **Next:** [03 · Top-5 labels](03_top5_labels.ipynb): write your own service.
