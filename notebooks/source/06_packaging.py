# %% [markdown]
# # 06 · Packaging and shipping the service
#
# A service that runs on your laptop is half-way there. To run it anywhere else you ship the
# model folder, its dependencies and its weights as one **container image**. MLServer does this
# in one command: `mlserver build <folder> -t <image>` writes a Dockerfile based on the
# official `seldonio/mlserver` image, installs the folder's `requirements.txt` into it, and
# builds the image with Docker.
#
# **What you do here, and what is graded (3 points).**
#
# * Exercise 1, the service's `requirements.txt`, in pip's format (2 points);
# * Exercise 2, the Dockerfile MLServer writes for the build folder (1 point).

# %%
from labkit import show

random_weights = show.weights_banner()

# %% [markdown]
# ## What you ship: a copy of the service
#
# You package a copy of the lab's TinyViT service, `shipped/` (the same `serve-model.py` and
# helper modules as `tinyvit/`), so that nothing you do here changes the folders the other
# notebooks serve.

# %%
from labkit import checks
from labkit.workspace import lab_service_copy

folder = lab_service_copy("shipped", with_settings=True)
checks.check_each_write(folder)
print(sorted(path.name for path in folder.iterdir() if not path.name.startswith((".", "__"))))

# %% [markdown]
# ## Exercise 1: `requirements.txt`, in pip's format
#
# `mlserver build` installs `requirements.txt` from the model folder with **pip**. Write
# `shipped/requirements.txt` (a cell starting with `%%writefile shipped/requirements.txt`):
# one line per package that `serve-model.py` and its helpers import (by its name on PyPI),
# each **pinned** to the version this lab runs, plus what MLServer 1.7.1 needs from you:
# `uvloop` below 0.22. Any pip specifier that admits only the version you tested (or its patch
# releases) is right; comments and index options are fine.
#
# > **The course text says** `conda list -e > requirements.txt`. **What happens:** that
# > writes conda's own format, `name=version=build` lines and conda-only packages; pip stops at
# > the first line, and the image does not build. The check under your cell names the line.
#
# Pins make the image reproducible: the build next month installs what you tested today. (The
# torch pinned here is a large CUDA build; for a CPU-only image you would take torch from
# PyTorch's CPU package index instead.)

# %% [markdown]
# Which versions does this lab run? Ask the environment, as for `requests` here (a package
# the service does not need); `pip show <name>` in a terminal says the same.

# %%
from importlib.metadata import version

print("requests", version("requests"))

# %% solution id=requirements
%%writefile shipped/requirements.txt
mlserver==1.7.1
uvloop==0.21.0
torch==2.14.1
timm==1.0.31
safetensors==0.8.0
numpy==2.4.6
pillow==13.0.0

# %% tests id=requirements-check points=2
checks.requirements("shipped")

# %% [markdown]
# ## A build folder
#
# Two things in a service folder are right for the lab and wrong for an image:
#
# * the weights: here `tinyvit.safetensors` is a link to the lab's checkpoint, outside the
#   folder; the image must carry the weights themselves, so the build folder gets a copy and
#   `parameters.uri` points at it.
# * `settings.json` binds `127.0.0.1`. Inside a container that would refuse every connection
#   from outside the container; the image binds `0.0.0.0`, and you choose who may connect when
#   you publish the port (`docker run -p 127.0.0.1:8080:8080` keeps it on your machine).
#
# `labkit.serving.packaging.build_context` prepares such a folder in a temporary directory (`shipped/`
# stays as it is):

# %%
# NBVAL_CHECK_OUTPUT
import json

from labkit.serving import packaging
from labkit.serving import terminal

context = packaging.build_context("shipped", dockerfile=False)
print(sorted(path.name for path in context.iterdir()))
print("uri: ", json.loads((context / "model-settings.json").read_text())["parameters"]["uri"])
print("host:", json.loads((context / "settings.json").read_text())["host"])

# %% [markdown]
# ## Exercise 2: generate the Dockerfile
#
# `mlserver dockerfile <folder>` writes the Dockerfile that `mlserver build` would build, without
# building it. Run that command on the build folder (its path is in `context`). From a cell,
# `terminal("<the command>")` runs a command line as a terminal would and shows what MLServer
# prints; in a terminal, with the lab's environment active, type the command itself.

# %% solution id=dockerfile
terminal(f"mlserver dockerfile {context}")

# %% tests id=dockerfile-check points=1
checks.image_folder(context)

# %% [markdown]
# ## The Dockerfile, step by step

# %%
dockerfile = (context / "Dockerfile").read_text()
print(dockerfile)

# %%
# NBVAL_CHECK_OUTPUT
for image, stage in packaging.dockerfile_stages(dockerfile):
    print(f"FROM {image}" + (f" AS {stage}" if stage else ""))

# %% [markdown]
# * **Stage 1, `env-builder`** (miniconda): only used if the folder has a conda
#   `environment.yml`; it packs that environment into a tarball. Ours has none.
# * **Stage 2** starts from `seldonio/mlserver:1.7.1-slim` (MLServer already installed), copies
#   `settings.json`, `model-settings.json` and `requirements.txt` first and installs the
#   requirements (`hack/build-env.sh`): Docker caches that layer, so changing only your code
#   does not reinstall torch.
# * `COPY . .` adds everything else (`serve-model.py`, the weights), and `CMD` runs
#   `mlserver start` on the folder, as user 1000 (not root).
#
# ## Build and run
#
# Building needs a Docker daemon; the Docker client alone is not enough.

# %%
docker = packaging.docker_available()
print("Docker daemon reachable:", docker)

# %%
import subprocess

build = f"mlserver build {context} -t tinyvit:0.1"
run = ["docker", "run", "--rm", "-d", "--name", "tinyvit", "-p", "127.0.0.1:8080:8080", "-p", "127.0.0.1:8081:8081", "tinyvit:0.1"]
if docker:
    terminal(build)
    subprocess.run(run, check=True)
else:
    print("No Docker daemon here, so nothing is built. On a machine with Docker, run:\n")
    print("  " + build)
    print("  " + " ".join(run))
    print("  curl -s 127.0.0.1:8080/v2/models/tinyvit/ready  # repeat until 200, then send requests as in notebook 02")

# %% [markdown]
# With a daemon, the container answers exactly like the server you started from the notebooks
# (same protocol, same ports), so `labkit.client.infer("http://127.0.0.1:8080/v2/models/tinyvit/infer", ...)`
# works unchanged. Stop it with `docker stop tinyvit`.

# %%
import time

import requests

from labkit.client import infer, load_image, pixels_request

if docker:
    for _ in range(120):
        try:
            if requests.get("http://127.0.0.1:8080/v2/models/tinyvit/ready", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    print(infer("http://127.0.0.1:8080/v2/models/tinyvit/infer", pixels_request([load_image()])).shape)
    subprocess.run(["docker", "stop", "tinyvit"], check=True)

# %% [markdown]
# ## Beyond one machine: Kubernetes with KServe
#
# An image runs the same on a cluster. `deploy/kserve-inferenceservice.yaml` serves it with
# [KServe](https://kserve.github.io/website/), which speaks the same V2 protocol:

# %%
show.file("deploy/kserve-inferenceservice.yaml")

# %% [markdown]
# The knobs, from the inside out:
#
# * **Inside a pod**, `parallel_workers` and adaptive batching (notebook 05) decide how one
#   MLServer uses its CPUs; `resources` tells the cluster how many CPUs that is.
# * **Across pods**, `minReplicas`/`maxReplicas` bound how many copies run, and KServe's
#   autoscaler adds a pod when each already holds `scaleTarget` requests in flight
#   (`scaleMetric: concurrency`). `minReplicas: 0` would scale to zero when idle, at the price of
#   a cold start (model loading) for the first request.
# * **Health**: the readiness probe asks `/v2/models/tinyvit/ready`, so a pod receives traffic
#   only once its model has loaded; the liveness probe restarts a pod whose server stopped
#   answering.
#
# `kubectl apply -f deploy/kserve-inferenceservice.yaml` on a cluster with KServe installed;
# the lab itself stays on your machine.

# %%
# NBVAL_CHECK_OUTPUT
import shutil

shutil.rmtree(context.parent)
print("build folder removed:", not context.exists())

# %% [markdown]
# **Next:** [07 · Monitoring](07_monitoring.ipynb): read and compute the server's metrics.
