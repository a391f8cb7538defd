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
# An MLServer service is a folder. Ours is `tinyvit/` at the top of the repository:
#
# | file | what it says |
# |---|---|
# | `model-settings.json` | **which model**: its name, the Python class that implements it, where its weights are, and per-model knobs such as adaptive batching |
# | `settings.json` | **how the server runs**: address, ports, number of parallel workers |
# | `serve-model.py` | **the code**: a subclass of `mlserver.MLModel` with `load()` and `predict()` |
#
# Here are the real files.

# %%
# NBVAL_CHECK_OUTPUT
show.file("tinyvit/model-settings.json")
show.file("tinyvit/settings.json")

# %% [markdown]
# `implementation` is `<python file>.<class>`: MLServer imports `serve-model.py` from the
# folder and instantiates `TinyViTModel`. `parameters.uri` points at the weights file; MLServer
# resolves it relative to the folder. `settings.json` binds the server to `127.0.0.1`
# (MLServer's default is `0.0.0.0`, every network interface, which is not what you want on a
# laptop or a shared JupyterHub) and turns off debug mode.
#
# The model class is short. `load()` builds the network once per worker; `predict()` turns
# a request into images, runs them through the network, and returns probabilities.

# %%
import inspect
import importlib.util

from labkit.weights import REPO_ROOT

spec = importlib.util.spec_from_file_location("serve_model", REPO_ROOT / "tinyvit" / "serve-model.py")
serve_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serve_model)
print(inspect.getsource(serve_model.TinyViTModel.load))
print(inspect.getsource(serve_model.TinyViTModel.predict))

# %% [markdown]
# Two things differ from a naive first version, and the lab keeps both on purpose:
#
# * The input always has a **leading batch axis**: `[N, H, W, 3]`, even for one image. When
#   MLServer batches requests, it glues them together along axis 0. A single `[H, W, 3]`
#   image would be glued into one tall image, and every caller would get a wrong answer.
# * The request is decoded by hand (`decode_images`) rather than with `@decode_args`, so that
#   a bad request gets a `400` with a message that says what to send, instead of a `500`.
#
# Here is the whole setup:

# %%
show.diagram("serving-setup")

# %% [markdown]
# ## Start the server
#
# In a terminal you would run
#
# ```bash
# mlserver start tinyvit
# ```
#
# and watch the log. From a notebook, `labkit.server.ModelServer` does the same in a managed
# subprocess: it runs a copy of the folder (your files are never changed), picks free ports
# if 8080/8081/8082 are taken, waits until the model is *ready*, and stops the server when
# you call `stop()` or shut the kernel down.

# %%
from labkit.server import ModelServer

server = ModelServer("tinyvit").start()
server

# %% [markdown]
# ## Ask the server about the model
#
# Every model has a metadata endpoint, `GET /v2/models/<name>`. It tells a client the model's
# name, its platform and the inputs and outputs it expects.

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
for path in ["/v2/health/live", "/v2/health/ready", "/v2/models/tinyvit/ready", "/v2/models/nosuchmodel/ready"]:
    status = requests.get(server.http_url + path, timeout=10).status_code
    print(f"{path:32} {status}")

# %% [markdown]
# ## The API documents itself
#
# MLServer serves an interactive OpenAPI page at `/v2/docs` (and one per model at
# `/v2/models/<name>/docs`). Open the link below in a new tab to try requests from the
# browser. On a remote JupyterHub the link points at the hub's own machine, so use it from
# the notebook (as below) or through the hub's proxy.

# %%
from IPython.display import HTML, display

display(HTML(f'<a href="{server.docs_url}" target="_blank">{server.docs_url}</a>'))

# %%
# NBVAL_CHECK_OUTPUT
spec = requests.get(server.http_url + "/v2/docs/dataplane.json", timeout=10).json()
for path in sorted(spec["paths"]):
    print(path)

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
