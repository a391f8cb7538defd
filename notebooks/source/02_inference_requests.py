# %% [markdown]
# # 02 · Inference requests
#
# A running MLServer speaks the **Open Inference Protocol** (V2). In this notebook you build
# requests yourself, send them with `requests`, and read the answers: first NumPy pixels, as
# the course text does, then two more compact ones (JPEG bytes, and gRPC's binary messages,
# whose cost notebook 05 measures). At the end you break
# your service from notebook 01 on purpose, and see why every request here has a batch axis.
#
# The server below runs the lab's full TinyViT service (`../tinyvit/`): the same model as
# yours, but it takes a **batch** of images and checks every request. It runs with *adaptive
# batching* on (notebook 05 explains it): MLServer waits up to 50 ms (`max_batch_time`) to
# merge up to 6 requests (`max_batch_size`) into one call of the model. Every answer stays the
# caller's own, as the end of this notebook shows. It runs the model in MLServer's own process
# (`parallel_workers: 0`, as your notebook 01 server): one process holds one TinyViT, which
# keeps the notebook within a small hub's memory.
#
# **What you do here, and what is graded (3 points).** You build Open Inference Protocol
# requests by hand and in code; the exercise is `classify_remote`, a function that asks the
# server about any image (3 points).

# %%
from labkit import show
from labkit.serving import ModelServer

BATCHING = {"max_batch_size": 6, "max_batch_time": 0.05}
random_weights = show.weights_banner()
server = ModelServer("tinyvit", parallel_workers=0, **BATCHING).start()
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
# ## The pieces of a request
#
# A request to `POST /v2/models/<name>/infer` is JSON. Three MLServer classes build and read
# it; here they are on a tiny array of 2 × 2 pixels, so that the whole thing fits on screen:
#
# * `NumpyCodec.encode_input(name, array)`: a *codec* turns a NumPy array into one of the
#   protocol's tensors: a name, a shape, a datatype (read off the array's dtype) and a flat
#   list of values.
# * `InferenceRequest(inputs=[...])`: the request, with one or more named inputs. Its
#   `model_dump_json()` method gives the JSON text to send as the body.
# * `NumpyCodec.decode_output(output)`: the reverse, for one output of an
#   `InferenceResponse` (build that from the answer's JSON with
#   `InferenceResponse.model_validate(...)`).

# %%
# NBVAL_CHECK_OUTPUT
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

tiny = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
tiny_input = NumpyCodec.encode_input(name="example", payload=tiny)
print(InferenceRequest(inputs=[tiny_input]).model_dump_json(exclude_none=True))

# %% [markdown]
# The server says what it expects in its metadata: the input's name, datatype and shape
# (`-1` means "any size").

# %%
# NBVAL_CHECK_OUTPUT
import requests

print(requests.get(server.model_url, timeout=10).json()["inputs"])

# %% [markdown]
# ## Exercise: ask the server about any image
#
# Write `classify_remote(image)`: it takes one uint8 image `[H, W, 3]` and returns the
# server's 21,841 probabilities for it (shape `[21841]`, or `[1, 21841]`). Inside it:
#
# 1. give the image its batch axis;
# 2. encode it as the input the service expects, and wrap it in an `InferenceRequest`;
# 3. `requests.post` it to `server.infer_url` as JSON (`model_dump_json()` as `data=`, with
#    the header `Content-Type: application/json`), and stop with an error if the status is
#    not 200 (`raise_for_status()`);
# 4. decode the first output of the answer.
#
# > **The course text says** `requests.post(url, json=inference_request.dict())`.
# > **What happens:** in MLServer 1.7 (pydantic 2) `.dict()` is deprecated and warns (below); it
# > still works today, and will not tomorrow. Use `model_dump_json()`.

# %%
# NBVAL_CHECK_OUTPUT
import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    InferenceRequest(inputs=[tiny_input]).dict()
print(type(caught[0].message).__name__ + ":", str(caught[0].message).split(". ")[0])

# %% solution id=remote-classifier
def classify_remote(image: np.ndarray) -> np.ndarray:
    ### BEGIN SOLUTION
    request = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", image[np.newaxis])])
    answer = requests.post(server.infer_url, data=request.model_dump_json(),
                           headers={"Content-Type": "application/json"}, timeout=60)
    answer.raise_for_status()
    output = InferenceResponse.model_validate(answer.json()).outputs[0]
    return NumpyCodec.decode_output(output)[0]
    ### END SOLUTION

# %% [markdown]
# Try it on the cat:

# %%
# NBVAL_CHECK_OUTPUT
probabilities = np.ravel(classify_remote(image))
print(probabilities.shape, probabilities.dtype, "sum:", round(float(probabilities.sum()), 3))
top_index = int(probabilities.argmax())

# %% [markdown]
# <details><summary>Hint 1: when the server answers 400</summary>
#
# Print `answer.json()["error"]`: the service's message says what it expected (the input's
# name, the shape `[N, H, W, 3]`, the datatype).
# </details>
#
# <details><summary>Hint 2: the batch axis</summary>
#
# NumPy indexing with `None` (or `np.newaxis`) at a position adds an axis of length 1 there.
# </details>
#
# <details><summary>Hint 3: reading the answer</summary>
#
# The answer's JSON is an inference response: `InferenceResponse` can validate it, and the
# codec that encoded the input decodes an output; for one image the array has one row.
# </details>
#
# The check calls your function with images it chooses and compares each answer with TinyViT
# run in this notebook. If something is off, it says what.

# %% tests id=remote-classifier-check points=3
from labkit import checks

checks.remote_classifier(classify_remote)

# %% [markdown]
# ## The same request without MLServer on the client
#
# A client in another language has no `NumpyCodec`. The protocol is plain JSON, so you can
# write the body yourself: this is all a codec does.

# %%
# NBVAL_CHECK_OUTPUT
from labkit.client import infer, pixels_request

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
print("same answer as with NumpyCodec:", np.allclose(raw_probabilities, infer(server.infer_url, pixels_request(batch))))

# %% [markdown]
# ## A batch of two
#
# Two images of the same size stack into `[2, H, W, 3]`; the answer has one row per image.
# From here on the lab uses `labkit.client`: `pixels_request` and `infer` do what your
# `classify_remote` does, for a batch.

# %%
# NBVAL_CHECK_OUTPUT
two = np.stack([image, np.fliplr(image)])
print("request shape:", two.shape)
print("answer shape: ", infer(server.infer_url, pixels_request(two)).shape)

# %% [markdown]
# ## Compact payloads: JPEG bytes instead of pixels
#
# The pixel request spells out every byte of the image as a decimal number in JSON. The file
# itself is much smaller. The service also accepts encoded images: datatype `BYTES`, one
# file per element, base64 in JSON (`content_type: base64`). Images in one batch may then
# have different sizes. Compare the two side by side: calls taken in turn (pixels, JPEG,
# pixels, JPEG, ...), so that both meet the same moments of a shared machine; each row gives
# the request's size, the median of its calls, their spread and its ratio to the pixels. Your
# numbers will differ: compare the two rows of this run by their ratio. When the line above
# the table says other programs were busy, even the ratio may not hold (the line says how
# many of the notebooks' ratios held beside a busy core in the lab's record). A few seconds on
# a quiet machine, longer beside busy programs.

# %% demo
import time

import pandas as pd

from labkit.client import encode_jpeg, files_request, request_body
from labkit.measure import interleaved, side_by_side
from labkit.measure import OtherLoad

jpeg = encode_jpeg(image)
payloads = {"pixels (NumPy JSON)": pixels_request([image]), "JPEG bytes (base64)": files_request([jpeg])}


def one_call(request) -> dict:
    started = time.perf_counter()
    infer(server.infer_url, request)
    return {"latency_ms": (time.perf_counter() - started) * 1000}


with OtherLoad() as load:  # how much of the CPU other processes took while the calls ran
    calls = interleaved(payloads, one_call, rounds=5, progress=True)
print(load.sentence())
comparison = side_by_side(calls, baseline="pixels (NumPy JSON)", rate="latency_ms")
comparison.insert(0, "request size (KB)", [len(request_body(payloads[name])) / 1024 for name in comparison.index])
comparison = comparison.rename(columns={"latency_ms": "median latency (ms)", "latency_ms spread": "spread (ms)",
                                        "vs pixels (NumPy JSON)": "latency vs pixels"})
comparison.round(2)

# %% demo
import matplotlib.pyplot as plt

figure, axes = plt.subplots(1, 2, figsize=(9, 3))
for axis, column in zip(axes, ["request size (KB)", "median latency (ms)"]):
    comparison[column].plot.barh(ax=axis, color=["#f9ab00", "#188038"], title=column)
figure.tight_layout()

# %% [markdown]
# Both payloads describe the same picture, so the answers agree:

# %% demo
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
# messages instead of JSON, on a long-lived HTTP/2 connection. The request is built the same
# way; MLServer's converters turn it into the protobuf message and the reply back:

# %% demo
# NBVAL_CHECK_OUTPUT
import grpc
from mlserver.grpc import dataplane_pb2_grpc
from mlserver.grpc.converters import ModelInferRequestConverter, ModelInferResponseConverter

grpc_request = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", batch)])
message = ModelInferRequestConverter.from_types(grpc_request, model_name="tinyvit", model_version=None)
with grpc.insecure_channel(server.grpc_address) as channel:
    reply = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(message, timeout=60)
grpc_probabilities = NumpyCodec.decode_output(ModelInferResponseConverter.to_types(reply).outputs[0])
print(grpc_probabilities.shape, "same top class as REST:", grpc_probabilities[0].argmax() == top_index)

# %% [markdown]
# ## Break it, then fix it: why the batch axis
#
# Your service from notebook 01 takes one image, `[H, W, 3]`, as the course text's does. It
# answers a single caller correctly. Now serve it with the same adaptive batching as the lab's
# server above and let six callers send their own image at the same time. Each answer is
# compared with TinyViT's answer for that caller's image, and the table shows what came back
# to each caller: the output's name and declared shape, or the server's error.

# %% demo
from IPython.display import display

from labkit.measure import judge_concurrent_callers, pixels_body
from labkit.model import reference_model

from labkit import checks

callers_images = [np.roll(image, 60 * caller, axis=1) for caller in range(6)]
expected = reference_model().probabilities(callers_images)  # TinyViT's answers, as the checks compute them
server.stop()  # one TinyViT at a time (memory): the lab's server starts again at the end of the cell
print("Checking your my-tinyvit/ service in a Python process of its own (about 10 s; longer on a busy "
      "machine)...", flush=True)
try:
    checks.service("my-tinyvit")  # your notebook 01 service, called once
except checks.CheckFailed as failure:
    print(f"This part serves your my-tinyvit/ service of notebook 01, and it does not work yet:\n"
          f"  {failure.what}\nFinish Exercise 3 of notebook 01, then run this cell again.")
else:
    single_image = ModelServer("my-tinyvit", **BATCHING).start()
    bodies = [pixels_body(im) for im in callers_images]  # [H, W, 3] each, as your service takes them
    judged = judge_concurrent_callers(single_image.infer_url, bodies, expected)
    single_image.stop()
    display(judged)
    ok, right = (judged["HTTP status"] == 200).sum(), (judged.answer == "right").sum()
    print(f"{ok} of {len(judged)} callers got status 200; {right} got their own image's answer.")
    if ok == 0:
        print("No caller got an answer; the server said:", judged["came back"].iloc[0])
    elif right < ok:
        print(f"So {ok - right} caller(s) got status 200 and an answer that is not their image's.")
    elif right == len(judged):
        print("Every caller was right this time: the requests did not meet in one batch. Run the cell again.")
server.start();

# %% [markdown]
# Read the table. If every caller got status 400 with "Method predict can't be used for
# adaptive batching: method is not bound", your `predict()` carries the course text's
# `@decode_args`, and in MLServer 1.7.1 that decorator and adaptive batching do not work
# together: to find the model behind `predict()`, the batcher follows the function's
# `__wrapped__`, which `decode_args` (through `functools.wraps`) points at your undecorated
# function, bound to no model. Every request fails, loudly, whatever its shape.
#
# Without the decorator (a `predict()` that takes the `InferenceRequest` and decodes it itself)
# batching reaches your code, and what happens is worse, because nothing fails. MLServer
# merges the callers' arrays along the first axis, which for `[H, W, 3]` images is the image
# height: `predict()` sees one tall image and returns one row, and MLServer splits the answer
# by each caller's first axis. The lab's tests run notebook 01's solution that way, with the
# same six images: all six callers got status 200, each with an answer declared as
# `[300, 21841]` (one row per pixel row of its 300-pixel-high image) holding one row of data or
# none. A client that does not check would
# carry on with garbage.
#
# Now the lab's server above, which takes `[N, H, W, 3]` with the same batching, and the same
# six callers, each sending its image with a batch axis:

# %% demo
# NBVAL_CHECK_OUTPUT
with_batch_axis = judge_concurrent_callers(server.infer_url, [pixels_body(im[None]) for im in callers_images], expected)
print(with_batch_axis.answer.value_counts().to_string())

# %% [markdown]
# With the batch axis a merged batch of `k` requests is `[k, H, W, 3]`, `predict()` answers `k`
# rows, and MLServer hands each caller its own row. This is why every request in this lab
# carries a leading batch axis, even for one image.

# %% [markdown]
# ## Where the course text needs a correction
#
# * `InferenceRequest.dict()` is deprecated in MLServer 1.7: use `model_dump()` (or
#   `model_dump_json()`, which also turns bytes into JSON-safe strings).
# * Send images with a leading batch axis, `[N, H, W, 3]`; a bare `[H, W, 3]` image gets a 400
#   here, and, in a service without the batch axis, wrong answers with status 200 under
#   adaptive batching (the "Break it" section above).
# * `@decode_args` and adaptive batching do not work together in MLServer 1.7.1: every request
#   gets a 400 (the "Break it" cell, with your notebook 01 service). A service that batches
#   takes the `InferenceRequest` and decodes it itself, as the lab's does.
# * Wait for `/v2/models/<name>/ready`, not `/v2/health/ready`, before the first request.
#
# Stop the server:

# %%
# NBVAL_CHECK_OUTPUT
server.stop()
print("running:", server.running)

# %% [markdown]
# **Next:** [03 · Top-5 labels](03_top5_labels.ipynb): write your own service.
