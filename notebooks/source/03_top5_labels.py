# %% [markdown]
# # 03 · Top-5 labels: your own service
#
# Probabilities for 21,841 classes are what the network computes, not what a client wants.
# A photo-tagging app wants **names**: the five most likely labels and how sure the model is.
# In this notebook you write that service: a subclass of the lab's `TinyViTModel` whose
# `predict()` returns two outputs, `labels` (`[N, 5]` strings) and `scores` (`[N, 5]`
# probabilities), best first, for every image of the batch.

# %%
from labkit import show

random_weights = show.weights_banner()

# %% [markdown]
# ## The label names
#
# timm ships the ImageNet-22k class names, so no download is needed:
# `ImageNetInfo("imagenet-22k").index_to_description(i)` is the name of class `i`.

# %%
# NBVAL_CHECK_OUTPUT
from timm.data import ImageNetInfo

info = ImageNetInfo("imagenet-22k")
print(info.num_classes(), "classes")
for index in [0, 1000, 2000]:
    print(index, "->", info.index_to_description(index))

# %% [markdown]
# ## The service folder
#
# Your service lives in `top5/`, next to this notebook. `prepare_service_folder` writes what
# is not yours to write: `model-settings.json` (name `tinyvit-top5`, your class, the weights;
# only if missing, so your edits stay), `settings.json`, and `tinyvit_service.py`, a copy of
# the lab's service so that you can reuse its `TinyViTModel` (model loading, `classify()`)
# and `decode_images()` (the request checks). It never touches `serve-model.py`.

# %%
from labkit.workspace import prepare_service_folder

folder = prepare_service_folder("top5", name="tinyvit-top5", implementation="serve-model.TopFiveModel")
print(sorted(path.name for path in folder.iterdir() if not path.name.startswith("__")))

# %% [markdown]
# ## Exercise: write `predict()`
#
# Complete `predict()` below. It must, for a request of `N` images:
#
# 1. decode the images (`decode_images(payload)`) and get probabilities `[N, 21841]` with
#    `self.classify(images)`;
# 2. for **each row**, find the 5 most probable classes, best first;
# 3. set `labels` to an `[N, 5]` array of class names (`LABELS.index_to_description`) and
#    `scores` to the matching `[N, 5]` probabilities.
#
# The `return` statement is written for you. Running the cell writes the file.
#
# <details><summary>Hint 1: the top 5 of each row</summary>
#
# `np.argsort(-probabilities, axis=1)[:, :5]` gives the column indices of the 5 largest
# values of each row, largest first.
# </details>
#
# <details><summary>Hint 2: the matching scores</summary>
#
# `np.take_along_axis(probabilities, top, axis=1)` picks, row by row, the probabilities at
# those indices.
# </details>
#
# <details><summary>Hint 3: names for an array of indices</summary>
#
# `np.vectorize(LABELS.index_to_description, otypes=[object])(top)` maps every index to its
# name and keeps the `[N, 5]` shape.
# </details>

# %% solution id=top5-service
%%writefile top5/serve-model.py
import numpy as np
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from timm.data import ImageNetInfo

from tinyvit_service import TinyViTModel, decode_images

LABELS = ImageNetInfo("imagenet-22k")


class TopFiveModel(TinyViTModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        ### BEGIN SOLUTION
        probabilities = self.classify(decode_images(payload))
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]
        scores = np.take_along_axis(probabilities, top, axis=1)
        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)
        ### END SOLUTION
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("labels", labels),
                NumpyCodec.encode_output("scores", scores.astype(np.float32)),
            ],
        )

# %% [markdown]
# ## Start your service
#
# `ModelServer` runs the folder like `mlserver start top5` would, on free ports if the default
# ones are taken (another notebook may still be running a server). If the model fails to
# load, the error shows the end of the server log.

# %%
from labkit.server import ModelServer

server = ModelServer("top5").start()
server

# %% [markdown]
# ## Ask it about the cat
#
# `infer_outputs` returns every output of the answer, decoded.

# %%
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

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np

from labkit.client import encode_jpeg, files_request

images = [cat, cat[:200, :260], np.fliplr(cat)[40:, 60:]]
batch_outputs = infer_outputs(server.infer_url, files_request([encode_jpeg(image) for image in images]))
print("labels:", batch_outputs["labels"].shape, " scores:", batch_outputs["scores"].shape)

# %% [markdown]
# ## Check your service
#
# The checks compare your service with TinyViT run in this notebook on the same weights:
# 5 labels per image, all real ImageNet-22k names, ordered by score, the same top-5 as the
# in-process model (3 points), and a correct answer for a batch of mixed sizes (2 points).
# When your notebook is graded, hidden tests also run your service under adaptive batching
# (2 points).

# %% tests id=top5-check points=3
from labkit import checks

checks.top5_service(server)

# %% tests id=top5-batch-check points=2
checks.top5_batch(server)

# %% tests id=top5-batching-check points=2
# When your notebook is graded, this cell also restarts your service with adaptive
# batching and checks that concurrent callers each get their own rows.
### BEGIN HIDDEN TESTS
checks.top5_under_adaptive_batching(server)
### END HIDDEN TESTS

# %% [markdown]
# If a check fails, its message says what is wrong and gives a hint. Fix `serve-model.py`
# (re-run the exercise cell), then restart the server with `server.restart()` and run the
# checks again. The server log is in `server.log`.
#
# ## Stop the server

# %%
# NBVAL_CHECK_OUTPUT
server.stop()
print("running:", server.running)
