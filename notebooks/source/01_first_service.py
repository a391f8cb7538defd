# %% [markdown]
# # 01 · Your first MLServer service
#
# You trained (or downloaded) an image classifier. Now other programs need to use it:
# a web shop tagging photos, a mobile app, a batch job. Wrapping `model(x)` in a quick
# web handler works for a demo, but a **deployment server** earns its place on three counts:
#
# * **Performance**: it keeps the model loaded, runs several inference workers side by side,
#   and can merge concurrent requests into one batch (*adaptive batching*), all without
#   changing your model code.
# * **Resource management**: it decides how many processes and threads touch the CPU,
#   exposes health checks so an orchestrator knows when it is ready, and publishes metrics.
# * **Deployment complexity**: a standard protocol (the *Open Inference Protocol*, V2), the
#   same REST and gRPC API for every model, and one command to package it as a container.
#
# In this lab you serve **TinyViT** (`tiny_vit_5m_224.dist_in22k` from `timm`, 21,841
# ImageNet-22k classes) with **MLServer**. This first notebook starts the service and
# looks at what it offers. Nothing here needs a GPU.
#
# **What you do here, and what is graded (6 points).** You write the three files of a service
# folder and start it with `mlserver start`:
#
# * Exercise 1, `model-settings.json`: which model, which class (1 point);
# * Exercise 2, `settings.json`: how the server runs (1 point);
# * Exercise 3, `serve-model.py`: the service's `load()` and `predict()` (2 points);
# * Exercise 4, the inputs and outputs your service declares (2 points).
#
# A check runs right after each exercise: it says what it tried, or names the mistake.

# %%
from labkit import show

random_weights = show.weights_banner()

# %% [markdown]
# If a red banner appears, the lab runs with a *random* checkpoint (this machine could not
# reach the model hub). Everything in the lab still works, only the predicted labels are
# meaningless. Run `make weights` while online to get the real ones.
#
# ## The three ingredients
#
# An MLServer service is a folder with three files:
#
# | file | what it says |
# |---|---|
# | `model-settings.json` | **which model**: its name, the Python class that implements it, where its weights are, and per-model knobs such as adaptive batching |
# | `settings.json` | **how the server runs**: address, ports, number of parallel workers |
# | `serve-model.py` | **the code**: a subclass of `mlserver.MLModel` with `load()` and `predict()` |
#
# ![The lab's setup: the notebook's client sends requests over REST or gRPC to MLServer's main process, which reads the service folder, queues requests for adaptive batching and hands them to workers that run your class](../imgs/serving-setup.svg)
#
# Where each file acts: `settings.json` configures MLServer's main process (its address, its
# ports, how many workers it starts); `model-settings.json` names the model, the class in
# `serve-model.py` that each worker runs, and the model's own knobs such as the batching queue.
# The picture shows two workers and the queue. Here your service has neither: with
# `"parallel_workers": 0` (Exercise 2) the main process runs your class itself, one request at a
# time. Notebook 05 turns both on and measures what they change.
#
# You write all three, into `my-tinyvit/` next to this notebook. The cell below creates the
# folder with what is not yours to write: a link to the TinyViT checkpoint
# (`tinyvit.safetensors`) and the lab's small helper modules (`model_weights.py` finds the
# checkpoint, also offline; `image_batch.py`, `cpu_threads.py` and `freed_memory.py` you meet
# later). It never touches your three files. From now on, every cell that writes a file into
# the folder with `%%writefile` is checked right after it runs: a line starting with ✔ or ✘
# says whether MLServer would accept it.

# %%
from labkit import checks
from labkit.workspace import service_folder

folder = service_folder("my-tinyvit")
checks.check_each_write(folder)
print(sorted(path.name for path in folder.iterdir() if not path.name.startswith((".", "__"))))

# %% [markdown]
# ### Exercise 1: `model-settings.json`
#
# Write a cell that starts with `%%writefile my-tinyvit/model-settings.json`, followed by a
# JSON object with two fields:
#
# * `"name"`: the model's name, which clients put in the URL (`/v2/models/<name>/infer`).
#   Use `"my-tinyvit"`, the folder's name (MLServer warns when they differ).
# * `"implementation"`: `"<python file>.<class>"`, the file without `.py`. Your file will be
#   `serve-model.py` with a class `TinyViTModel`.
#
# No `parameters.uri` is needed: MLServer's default is the model's own folder, where the
# checkpoint is.
#
# > **The course text says** `{"name": "tinyvit", "implementation": "serve-model.TinyViTModel",}`
# > **What happens:** the comma before `}` makes the file invalid JSON (Python allows it, JSON
# > does not), and MLServer refuses to start. Here is Python's JSON reader on it, the same one
# > MLServer uses; the check below names the line.

# %%
# NBVAL_CHECK_OUTPUT
import json

course_text_settings = '{"name": "tinyvit", "implementation": "serve-model.TinyViTModel",}'
try:
    json.loads(course_text_settings)
except json.JSONDecodeError as error:
    print("JSONDecodeError:", error)

# %% solution id=model-settings
%%writefile my-tinyvit/model-settings.json
{
  "name": "my-tinyvit",
  "implementation": "serve-model.TinyViTModel"
}

# %% [markdown]
# The line under the cell checked the file's form. Whether `implementation` names a class that
# MLServer can import is checked once you have written `serve-model.py`, after Exercise 3.

# %% [markdown]
# ### Exercise 2: `settings.json`
#
# Now the server's settings, in `my-tinyvit/settings.json`:
#
# * `"host": "127.0.0.1"`. MLServer's default, `0.0.0.0`, listens on every network
#   interface: on a laptop in a café or a shared JupyterHub, anyone who can reach the
#   machine could use your model. Bind to this machine only.
# * `"parallel_workers": 0`: MLServer runs your model in its own process. With its default, 1,
#   it starts a worker process that loads torch and the model, beside a main process that
#   imports your file too (to find the class) and with it a torch of its own. On the lab's
#   machine a service written like yours was ready in 11.0 s with 0 workers against 19.0 s with
#   one, and held 0.88 GB against 1.36 GB (the lab's start benchmark, 2026-12-02). Workers pay off
#   when several share the load (notebook 05); custom metrics need one (notebook 07).
# * `"debug": false`: MLServer 1.7 defaults to debug mode.
#
# > **The course text says** to put `max_batch_size` and `max_batch_time` in `settings.json`.
# > **What happens:** nothing. MLServer reads adaptive batching per model, from
# > `model-settings.json`, and drops unknown keys of `settings.json` without a word. See for
# > yourself: below, MLServer's own classes read the same keys; the server's settings keep
# > nothing of them, the model's settings do. The check catches it; notebook 05 measures it.

# %%
# NBVAL_CHECK_OUTPUT
from mlserver.settings import ModelSettings, Settings

batching = {"max_batch_size": 8, "max_batch_time": 0.01}
server_side = Settings(host="127.0.0.1", **batching)
model_side = ModelSettings(name="demo", implementation="mlserver.MLModel", **batching)
print("settings.json keeps:      ", {key: getattr(server_side, key, "(dropped)") for key in batching})
print("model-settings.json keeps:", {key: getattr(model_side, key) for key in batching})

# %% solution id=server-settings
%%writefile my-tinyvit/settings.json
{
  "host": "127.0.0.1",
  "parallel_workers": 0,
  "debug": false
}

# %% tests id=server-settings-check points=1
checks.server_settings("my-tinyvit", expected_workers=0, debug_off=True)

# %% [markdown]
# ### Exercise 3: `serve-model.py`
#
# The course text's service takes **one image** and returns its probabilities. Complete the
# two methods:
#
# * `load()` runs once, in the process that serves the model, when the server starts. Build
#   the network with the lab's helper `load_tinyvit`, a coroutine (await it) that takes the
#   model's settings (`self.settings`) and reads the checkpoint they point at (the course text calls
#   `timm.create_model("hf_hub:timm/tiny_vit_5m_224.dist_in22k", pretrained=True)`, which
#   needs the model hub); keep it in `self.model`. Build timm's preprocessing for it into
#   `self.transform`: `resolve_data_config` reads the model's input settings (give it an
#   empty dict and the model), and `create_transform` takes them as keyword arguments.
#   Return `True`.
# * `predict()` gets the decoded input: `@decode_args` turns the request's `payload` tensor
#   into the `np.ndarray` the type hint asks for, and the array you return into the answer.
#   Turn the `[H, W, 3]` uint8 image into a PIL image, preprocess it, add a batch axis
#   (`[None]`), run the network without gradients (`torch.inference_mode()`), and return
#   `softmax` probabilities as a NumPy array.
#
# <details><summary>Hint 1: the types along the way</summary>
#
# NumPy array `[H, W, 3]` -> PIL image (PIL's `Image` has a function that takes an array) ->
# the transform gives a tensor `[3, 224, 224]` -> the network wants `[1, 3, 224, 224]`.
# </details>
#
# <details><summary>Hint 2: from logits to an answer</summary>
#
# The network returns logits `[1, 21841]`. A tensor has a `softmax` method (over the last
# dimension, the classes) and a `numpy` method; `@decode_args` encodes the NumPy array you return.
# </details>

# %% solution id=first-service
%%writefile my-tinyvit/serve-model.py
import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import decode_args
from PIL import Image
from timm.data import create_transform, resolve_data_config

from model_weights import load_tinyvit


class TinyViTModel(MLModel):
    async def load(self) -> bool:
        ### BEGIN SOLUTION
        self.model = await load_tinyvit(self.settings)
        self.transform = create_transform(**resolve_data_config({}, model=self.model))
        return True
        ### END SOLUTION

    @decode_args
    async def predict(self, payload: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        batch = self.transform(Image.fromarray(payload))[None]
        with torch.inference_mode():
            return self.model(batch).softmax(dim=-1).numpy()
        ### END SOLUTION

# %% tests id=first-service-check points=2
checks.service("my-tinyvit")

# %% [markdown]
# The check imported your file as MLServer will, ran `load()` and called `predict()` on three
# images (the third of the first's size and border, other content inside), and compared each answer with TinyViT's. It did so in a Python process of its own:
# your file imports torch, about 0.6 GB that this notebook would otherwise keep for the rest of
# the session. Now that the class exists,
# Exercise 1's check reads `model-settings.json` the way MLServer does: the model's name, and
# whether `implementation` resolves to a subclass of `MLModel` in your folder.

# %% tests id=model-settings-check points=1
checks.model_settings("my-tinyvit")

# %% [markdown]
# > **The course text says** to load `tiny_vit_5m_224.dist_in22k` from the hub.
# > **What happens:** on the Hugging Face hub the model's id is `timm/tiny_vit_5m_224.dist_in22k`
# > (timm's own records say so, below; `timm.create_model("hf_hub:timm/...", pretrained=True)`
# > fetches it, only while online). `load_tinyvit` reads a local checkpoint first, so the lab
# > works offline.
#
# > **The course text lists** `load()`, `predict()` and `unload()`. `unload()` runs when MLServer
# > unloads the model (or shuts down); `MLModel`'s default, printed below, does nothing but say
# > it succeeded, which is fine for your service. The lab's full service
# > (`../tinyvit/serve-model.py`) uses it to drop the network.

# %% demo
# NBVAL_CHECK_OUTPUT
import inspect
import sys

from mlserver import MLModel

# timm imports torch (0.6 GB): asked in a Python process of its own, this notebook stays light.
!{sys.executable} -c "import timm; print('hub id:', timm.models.get_pretrained_cfg('tiny_vit_5m_224.dist_in22k').hf_hub_id)"
print(inspect.getsource(MLModel.unload))

# %% [markdown]
# ## Start the server
#
# The course text starts the service from a terminal:
#
# ```bash
# mlserver start my-tinyvit
# ```
#
# The cell below runs exactly that command and shows MLServer's own start-up log: where it
# serves HTTP, gRPC and metrics, and which model it loaded. `terminal` (from
# `labkit.serving.commands`) runs a command line as a terminal would. For `mlserver start` it
# runs MLServer on a copy of your folder (so your files stay as you wrote them), binds it to
# 127.0.0.1 and moves to free ports when 8080-8082 are taken (another notebook may be running a
# server), and says under the log which of your settings it changed in the copy; it waits until
# the model is *ready*, and stops the server with `server.stop()` or when the kernel shuts down.
# Re-running the cell after an edit replaces the running server with a new one.
#
# You can also use a terminal (File > New > Terminal): `cd notebooks`,
# `source ../.venv/bin/activate`, `mlserver start my-tinyvit`; stop it with Ctrl+C. Then the
# server runs outside the notebook, on the ports your `settings.json` names.

# %%
from labkit.serving import terminal

server = terminal("mlserver start my-tinyvit")

# %% [markdown]
# The first lines come from MLServer itself; `server` holds the addresses it really got:

# %%
server

# %% [markdown]
# ## Ask the server about the model
#
# Every model has a metadata endpoint, `GET /v2/models/<name>`. It tells a client the model's
# name, its platform and the inputs and outputs it expects. Yours declares no inputs or
# outputs yet (they are optional fields of `model-settings.json`), so a client learns little;
# Exercise 4, below, declares them.

# %%
# NBVAL_CHECK_OUTPUT
import json

import requests

metadata = requests.get(server.model_url, timeout=10).json()
print(json.dumps(metadata, indent=2))

# %% [markdown]
# ## Health and readiness
#
# An orchestrator (Kubernetes, a load balancer) asks three questions:
#
# * `GET /v2/health/live`: is the process alive?
# * `GET /v2/health/ready`: is the server ready?
# * `GET /v2/models/<name>/ready`: is **this model** loaded and ready?
#
# Ask the last one. In MLServer 1.7.1, `/v2/health/ready` answers 200 even when a model failed
# to load, so `ModelServer` waits on the model's own endpoint.

# %%
# NBVAL_CHECK_OUTPUT
for path in ["/v2/health/live", "/v2/health/ready", "/v2/models/my-tinyvit/ready", "/v2/models/nosuchmodel/ready"]:
    status = requests.get(server.http_url + path, timeout=10).status_code
    print(f"{path:32} {status}")

# %% [markdown]
# ## The API documents itself
#
# MLServer serves an interactive OpenAPI page at `/v2/docs` (and one per model at
# `/v2/models/<name>/docs`). That page loads its scripts (Swagger UI) from a CDN on the
# internet, so offline, on a train or a closed hub, it stays blank. `ApiDocs` serves the same
# page (built by the same FastAPI function MLServer calls) with Swagger UI's files from the
# `swagger-ui-bundle` package installed with the lab, on a free loopback port, and passes every
# request the page sends on to your server.
#
# Open the link, expand **POST /v2/models/my-tinyvit/infer**, press **Try it out**, replace the
# example body with the one printed under the link (a 4×4 thumbnail of the cat, 48 pixel
# values: your service takes any size), and press **Execute**: the answer is your service's
# 21,841 probabilities. (On a remote JupyterHub the link points at the hub's own machine,
# which your browser cannot reach; there, the `requests` calls of notebook 02 do the same.)

# %%
from IPython.display import display

from labkit.client import load_image
from labkit.serving import ApiDocs

docs = ApiDocs(server, model="my-tinyvit")
display(docs)
thumbnail = load_image(size=(4, 4))
print(json.dumps({"inputs": [{"name": "payload", "datatype": "UINT8", "shape": list(thumbnail.shape),
                              "data": thumbnail.reshape(-1).tolist()}]}))

# %% [markdown]
# The page sent its request to your server like any other client. Run the next cell after
# **Execute**: it lists what the page passed on, and what your server answered.

# %%
for method, path, status in docs.requests:
    print(method, path, "->", status)
print(len(docs.requests), "request(s) from the page so far")

# %% [markdown]
# The OpenAPI document behind the page (`/v2/docs/dataplane.json`) is plain JSON that any tool
# reads; it lists every path the server answers:

# %%
# NBVAL_CHECK_OUTPUT
spec = requests.get(server.http_url + "/v2/docs/dataplane.json", timeout=10).json()
for path in sorted(spec["paths"]):
    print(path)

# %% [markdown]
# ### Exercise 4: declare what your model takes and returns
#
# A client that reads `GET /v2/models/my-tinyvit` should learn how to call your model without
# reading your code. `model-settings.json` takes two more fields for that, `inputs` and
# `outputs`: each a list of tensors, described by a `name`, a `datatype` (the protocol's, in
# capitals: `UINT8`, `FP32`, `BYTES`, ...) and a `shape`, one length per axis, `-1` for an axis
# whose length differs from request to request.
#
# Put them into `declaration` in the cell below, which adds them to your
# `my-tinyvit/model-settings.json` (it reads your file and writes it back with the two
# entries, so what you wrote in Exercise 1 stays). Describe
# what your service really does: what `predict()` receives (the request's tensor), and what
# the answer carries (the response the docs page showed you above has its output's name,
# datatype and shape; an image's height and width vary).
#
# <details><summary>Hint 1: where each field comes from</summary>
#
# The input's name is the name of `predict()`'s argument, which `@decode_args` matches to the
# request's tensor. Its axes are those of the one image it takes. The output's fields are in
# every response, next to its `data`.
# </details>
#
# <details><summary>Hint 2: reading a response without the docs page</summary>
#
# Send the body printed under the docs page's link with `requests.post(server.infer_url,
# json=...)` and look at the answer's `outputs`: print each one without its `data` (21,841
# numbers). Note that MLServer's `datatype` strings are in capitals.
# </details>

# %% solution id=metadata
from pathlib import Path

declaration = {}
### BEGIN SOLUTION
declaration["inputs"] = [{"name": "payload", "datatype": "UINT8", "shape": [-1, -1, 3]}]
declaration["outputs"] = [{"name": "output-0", "datatype": "FP32", "shape": [1, 21841]}]
### END SOLUTION
settings_file = Path("my-tinyvit/model-settings.json")
try:
    settings = json.loads(settings_file.read_text())
except ValueError:  # Exercise 1's file does not read: it stays as you wrote it
    print(f"{settings_file} is not valid JSON yet (Exercise 1): fix it, then run this cell again.")
else:
    settings_file.write_text(json.dumps({**settings, **declaration}, indent=2) + "\n")
    print(settings_file.read_text())

# %% [markdown]
# MLServer reads `model-settings.json` when it loads the model: start the server again (the
# same command as above; it replaces the running server), then read the metadata back.

# %%
docs.stop()
server = terminal("mlserver start my-tinyvit")

# %%
# NBVAL_CHECK_OUTPUT
print(json.dumps(requests.get(server.model_url, timeout=10).json(), indent=2))

# %% [markdown]
# The check is the client your declaration is for: it builds requests from the metadata
# alone, for two images of different sizes, and compares each answer with the declared
# outputs.

# %% tests id=metadata-check points=2
checks.declared_metadata("my-tinyvit", declaration)

# %% [markdown]
# What does MLServer do with the declaration? It checks its form when it loads the model (a
# datatype it does not know, such as `uint8`, fails the load), and nothing else: a request
# that contradicts it still reaches your `predict()`, and the answer keeps the name your code
# gives it. Measured on your server:

# %%
# NBVAL_CHECK_OUTPUT
image = load_image(size=(40, 30))
pixels = {"name": "payload", "datatype": "UINT8", "shape": list(image.shape), "data": image.ravel().tolist()}
floats = {**pixels, "datatype": "FP32", "data": (image / 255).ravel().tolist()}
for what, tensor in [("as declared", pixels), ("FP32, against the declaration", floats)]:
    answer = requests.post(server.infer_url, json={"inputs": [tensor]}, timeout=60)
    named = [output["name"] for output in answer.json()["outputs"]] if answer.ok else "-"
    print(f"{what:31} HTTP {answer.status_code}, outputs {named}")
# What your server did with the FP32 request, read from its answer:
print("MLServer passed the FP32 request on to your predict() without a word about the declaration; "
      + ("your code failed on it (HTTP 500, from inside predict())." if answer.status_code == 500 else
         "your code answered it anyway." if answer.ok else f"it answered HTTP {answer.status_code}."))

# %% [markdown]
# MLServer does not check a request against the declared datatypes: no 400 naming the
# declaration, whatever your service then does with it. A declaration is documentation that
# clients trust: keep it true to the code, as the check did.

# %% [markdown]
# ## Stop the server
#
# A running server holds a port and, with parallel workers, several processes with a copy of
# the model each. Stop it when you are done (the kernel also stops it when it shuts down).

# %%
# NBVAL_CHECK_OUTPUT
server.stop()
print("running:", server.running)

# %% [markdown]
# **Next:** [02 · Inference requests](02_inference_requests.ipynb) sends images to the service.
