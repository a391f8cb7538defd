# %% [markdown]
# # 03 · Top-5 labels: your own service
#
# Probabilities for 21,841 classes are what the network computes, not what a client wants.
# A photo-tagging app wants **names**: the five most likely labels and how sure the model is.
# In this notebook you write that service, in the style of your notebook 01 service: its
# `predict()` takes a batch of images and returns two outputs, `labels` (`[N, 5]` strings) and
# `scores` (`[N, 5]` probabilities), best first, for every image of the batch.
#
# **What you do here, and what is graded (8 points).**
#
# * Exercise 1, `top5/model-settings.json` (1 point);
# * Exercise 2, the service: one image at a time (3 points), a batch of images of different
#   sizes (2 points) and, when your notebook is graded, concurrent callers under adaptive
#   batching (2 points, a hidden check; a cell before it lets you try the same yourself).

# %%
import sys

from labkit import show

random_weights = show.weights_banner()

# %% [markdown]
# ## The label names
#
# timm ships the ImageNet-22k class names, so no download is needed:
# `ImageNetInfo("imagenet-22k").index_to_description(i)` is the name of class `i`. The cell runs
# in a Python process of its own (`%%script`): timm imports torch, about 0.6 GB that this
# notebook would keep otherwise; your service imports it where the model runs.

# %% demo
%%script {sys.executable}
# NBVAL_CHECK_OUTPUT
from timm.data import ImageNetInfo

info = ImageNetInfo("imagenet-22k")
print(info.num_classes(), "classes")
for index in [0, 1000, 2000]:
    print(index, "->", info.index_to_description(index))

# %% [markdown]
# ## The service folder
#
# Your top-5 service lives in `top5/`, next to this notebook. The cell below creates it with
# the checkpoint link, the lab's helper modules and a `settings.json` (loopback, debug off, the
# model in MLServer's own process: the server settings you wrote in notebook 01; here they are
# not the lesson). It copies nothing from `my-tinyvit/`: the model settings and the service are
# yours to write below. As in notebook 01, each `%%writefile` into the folder is checked right
# away.

# %%
from labkit import checks
from labkit.workspace import service_folder

folder = service_folder("top5", lab_settings=True)
checks.check_each_write(folder, service_check=checks.top5_file)
print(sorted(path.name for path in folder.iterdir() if not path.name.startswith((".", "__"))))

# %% [markdown]
# ## Exercise 1: `top5/model-settings.json`
#
# In a cell that starts with `%%writefile top5/model-settings.json`, write the model settings of
# the new service: the name `top5`, like its folder, and, as `implementation`, the class
# `TopFiveModel` in `serve-model.py`. Its check runs after Exercise 2, once the class exists.

# %% solution id=top5-settings
%%writefile top5/model-settings.json
{
  "name": "top5",
  "implementation": "serve-model.TopFiveModel"
}

# %% [markdown]
# ## Exercise 2: the service
#
# Your notebook 01 service took one image. This one takes a **batch** and answers names.
# `load()` is already filled in below: it does what yours did in notebook 01. Write
# `predict()`, for a request of `N` images:
#
# 1. decode the request into a list of `[H, W, 3]` images with the lab's `decode_images`,
#    given the whole request (it accepts pixels `[N, H, W, 3]` and JPEG/PNG files, and turns a
#    bad request into a 400 that says what to send);
# 2. preprocess every image, stack them into one tensor `[N, 3, 224, 224]`, run the network once
#    and take the softmax: probabilities `[N, 21841]`;
# 3. for **each row**, the 5 most probable classes, best first: their names (`labels`, `[N, 5]`,
#    with `LABELS.index_to_description(index)`) and probabilities (`scores`, `[N, 5]`);
# 4. return an `InferenceResponse` with two outputs, `labels` and `scores`
#    (`NumpyCodec.encode_output(name, array)`).

# %% [markdown]
# <details><summary>Hint 1: where to start</summary>
#
# Your 01 `predict()` did steps 1-2 for one image. `torch.stack([...])` stacks a list of
# `[3, 224, 224]` tensors into a batch.
# </details>
#
# <details><summary>Hint 2: the top 5 of each row</summary>
#
# Sort each row on its own (NumPy's sorting functions take an `axis`), best first, and keep
# the first 5 columns. The scores must come from the same row and the same columns as their
# labels: `np.take_along_axis` picks values row by row.
# </details>
#
# <details><summary>Hint 3: names for an array of indices</summary>
#
# `LABELS.index_to_description` maps one index to its name; apply it to every element of the
# `[N, 5]` index array and keep the shape (an `object` array holds strings of any length).
# </details>

# %% solution id=top5-service
%%writefile top5/serve-model.py
import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config

from image_batch import decode_images
from model_weights import load_tinyvit

LABELS = ImageNetInfo("imagenet-22k")


class TopFiveModel(MLModel):
    async def load(self) -> bool:
        self.model = await load_tinyvit(self.settings)
        self.transform = create_transform(**resolve_data_config({}, model=self.model))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        ### BEGIN SOLUTION
        images = decode_images(payload)
        batch = torch.stack([self.transform(Image.fromarray(image)) for image in images])
        with torch.inference_mode():
            probabilities = self.model(batch).softmax(dim=-1).numpy()
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]
        scores = np.take_along_axis(probabilities, top, axis=1)
        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("labels", labels),
                NumpyCodec.encode_output("scores", scores.astype(np.float32)),
            ],
        )
        ### END SOLUTION

# %% [markdown]
# The line under the cell is the check of your file (a batch of two images, in a Python process of
# its own, as in notebook 01).
# Exercise 1's check, now that the class exists: does `model-settings.json` name the model
# `top5` and a class MLServer can import?

# %% tests id=top5-settings-check points=1
checks.model_settings("top5")

# %% [markdown]
# ## Start (or restart) your service
#
# Run this cell again after every change to `serve-model.py`: it replaces the running server
# with one that runs your new code. (The checks below refuse to test a server that still runs
# an older version of your files.) If the model fails to load, the error shows the end of the
# server log; all of it is `server.log` (`print(server.log)`).

# %%
from labkit.serving import terminal

server = terminal("mlserver start top5")

# %% [markdown]
# ## Ask it about the cat
#
# `infer_outputs` returns every output of the answer, decoded.

# %% demo
import pandas as pd

from labkit.client import CAT, infer_outputs, load_image, pixels_request

cat = load_image(CAT)
outputs = infer_outputs(server.infer_url, pixels_request([cat]))
pd.DataFrame({"label": outputs["labels"][0], "score": outputs["scores"][0].round(4)})

# %% [markdown]
# With the pretrained weights you would see cat breeds here (tabby, tiger cat, Egyptian cat…).
# With the random offline checkpoint the banner at the top warns that the names are
# meaningless; the service is still right if it returns what the model computes, and that is
# what the checks test.
#
# ## A batch of images of different sizes
#
# Encoded images (JPEG bytes) can differ in size within one batch; every image gets its own row.

# %% demo
# NBVAL_CHECK_OUTPUT
import numpy as np

from labkit.client import encode_jpeg, files_request

images = [cat, cat[:200, :260], np.fliplr(cat)[40:, 60:]]
batch_outputs = infer_outputs(server.infer_url, files_request([encode_jpeg(image) for image in images]))
print("labels:", batch_outputs["labels"].shape, " scores:", batch_outputs["scores"].shape)

# %% [markdown]
# ## Check your service
#
# The checks send images of their own (drawn anew on every run, not the cat) and compare your
# answers, labels and scores row by row, with TinyViT's own answers on the same weights (an
# export checked against PyTorch, run here with ONNX Runtime so this notebook does not hold
# torch): three requests of one image each (the third the size of the first, with the same
# border), 5 real ImageNet-22k names per image ordered by score,
# the same top 5 and scores as the model (3 points), and a batch of three different
# images of different sizes, each with its own row (2 points). When your notebook
# is graded, hidden tests also run your service under adaptive batching (2 points).
#
# The checks take your folder, `"top5"`, and talk to the server you started from it. If
# that server is not running (its start cell failed, say on a mistake in
# `model-settings.json`), they start your `serve-model.py` themselves with the name and
# class the exercise gives, and say so: these points are for the service, and the
# settings file has its own check above.

# %% tests id=top5-check points=3
from labkit import checks

checks.top5_service("top5")

# %% tests id=top5-batch-check points=2
checks.top5_batch("top5")

# %% [markdown]
# **Try it yourself before you hand in** (no points here): the hidden check below loads your
# service again with adaptive batching and sends 8 concurrent requests of 1 or 2 images, in two
# rounds; every caller must get exactly its own rows, labels and scores. This cell does the same
# with images drawn for it (the hidden check draws its own), so what grading would find, you see
# first. It takes about half a minute.

# %% demo
checks.top5_under_batching("top5")

# %% tests id=top5-batching-check points=2
# When your notebook is graded, this cell also restarts your service with adaptive
# batching and checks that concurrent callers each get their own rows.
### BEGIN HIDDEN TESTS
from labkit.instructor import hidden_checks

hidden_checks.top5_under_adaptive_batching("top5")
### END HIDDEN TESTS

# %% [markdown]
# If a check fails, its message says what is wrong and gives a hint. Fix `serve-model.py`
# (re-run the exercise cell), run the "Start (or restart)" cell, then the checks again. The
# whole server log is `server.log` (`print(server.log)`).
#
# ## Stop the server

# %%
# NBVAL_CHECK_OUTPUT
server.stop()
print("running:", server.running)

# %% [markdown]
# **Next:** [04 · Inference runtimes](04_inference_runtimes.ipynb): serve models by configuration.
