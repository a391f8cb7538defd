# The lab as a student runs it: `make lab` sets up .venv once (keyed on requirements.txt and
# pyproject.toml), prepares the weights and starts JupyterLab on loopback with a token.
# Included by the repository's Makefile; it is the Makefile of the student hand-out.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
WEIGHTS := weights/tinyvit.safetensors
LAB_HOST ?= 127.0.0.1
LAB_PORT ?= 8888
# Per-user state of Jupyter, IPython, matplotlib and npm (which JupyterLab's language-server
# finder runs) goes to .lab/ in the repo instead of $HOME: the lab writes nothing outside the
# repo and temp dirs (tests/test_writes.py). `make lab-env` prints these for a JupyterHub setup.
LAB_STATE := $(CURDIR)/.lab
export JUPYTER_CONFIG_DIR := $(LAB_STATE)/jupyter-config
export JUPYTER_DATA_DIR := $(LAB_STATE)/jupyter-data
export JUPYTER_RUNTIME_DIR := $(LAB_STATE)/jupyter-data/runtime
export IPYTHONDIR := $(LAB_STATE)/ipython
export MPLCONFIGDIR := $(LAB_STATE)/matplotlib
export NPM_CONFIG_CACHE := $(LAB_STATE)/npm
# The lab's JupyterLab settings (tools/jupyter): no nbgrader instructor tools, no news prompt,
# widget state saved with the notebook.
export JUPYTER_CONFIG_PATH := $(CURDIR)/tools/jupyter
# ONNX Runtime (1.32) otherwise keeps a device id for its telemetry in ~/.cache/Microsoft.
export ORT_DISABLE_TELEMETRY := 1
LAB_ENV_VARS := JUPYTER_CONFIG_DIR JUPYTER_CONFIG_PATH JUPYTER_DATA_DIR JUPYTER_RUNTIME_DIR IPYTHONDIR \
	MPLCONFIGDIR NPM_CONFIG_CACHE ORT_DISABLE_TELEMETRY

.PHONY: lab lab-env weights venv onnx hf-runtime hf-runtime-if-room triton

venv: $(STAMP)

# The sizes: pip's resolver report of requirements.txt and PyPI's file sizes (3.3 GB of wheels,
# torch and NVIDIA's libraries most of it), and du of the installed .venv, measured 2026-12-07.
$(STAMP): requirements.txt pyproject.toml
	@echo "Installing the lab's Python packages into .venv: about 3.3 GB to download, about 7 GB on disk."
	@echo "A few minutes on a fast network, longer on a slow one; pip shows each download below."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install --progress-bar on -r requirements.txt
	$(PY) -m pip install -qq --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Pretrained weights when the hub is reachable; otherwise a random checkpoint, with a loud warning.
# Then the checks' reference model for it (ONNX Runtime in the student's kernel instead of torch;
# exported once per checkpoint and verified against PyTorch, about a minute).
$(WEIGHTS): | $(STAMP)
	$(PY) -m labkit weights prepare --allow-random
	$(PY) -m labkit reference

weights: $(STAMP)
	$(PY) -m labkit weights prepare --allow-random
	$(PY) -m labkit reference

# TinyViT as ONNX for the ONNX Runtime and OpenVINO runtimes (runtimes/), written only after
# it answers like PyTorch (python -m labkit export; notebook 04 runs it too).
onnx: $(STAMP) $(WEIGHTS)
	$(PY) -m labkit export

# NVIDIA Triton serving TinyViT, for notebook 05 (your notebook 02 requests, sent to another server)
# and the benchmark: nvidia-pytriton in an environment of its own, since it pins numpy below 2
# (about 570 MB, under a minute from PyPI). Optional: without it, 05 says how to get it.
TRITON_STAMP := .venv-triton/.installed
triton: $(TRITON_STAMP)
$(TRITON_STAMP):
	test -x .venv-triton/bin/python || $(PYTHON) -m venv .venv-triton
	.venv-triton/bin/python -m pip install -qq --no-cache-dir nvidia-pytriton==0.7.0 openvino==2026.4.1 \
		pillow==13.0.0 "numpy<2"
	touch $@

lab: $(STAMP) $(WEIGHTS)
	@echo "JupyterLab on http://$(LAB_HOST):$(LAB_PORT)/lab (the token is in the URL printed below)"
	@# .venv/bin first on the PATH: `!mlserver ...` in a cell and `mlserver` in a JupyterLab terminal are
	@# the lab's, at home as under `make grade` (nbgrader runs the kernels with the same PATH); `exec`: the
	@# shell that sets it becomes JupyterLab, so Ctrl+C and a stop reach JupyterLab itself.
	PATH="$(abspath $(VENV))/bin:$$PATH" exec $(VENV)/bin/jupyter lab --no-browser --ip=$(LAB_HOST) --port=$(LAB_PORT) \
		--notebook-dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

lab-env:
	@$(foreach name,$(LAB_ENV_VARS),echo $(name)=$($(name));)

# Optional: MLServer's HuggingFace runtime in its own environment (.venv-hf: about 2.4 minutes
# and 9.2 GB here; it pulls tensorflow, optimum and a CUDA build of torch 2.8.0, the newest
# torch whose ONNX module optimum 1.x imports). labkit goes in without its dependencies, for
# labkit.runtimes.huggingface. Notebook 04 uses it when it exists. Installed once (a stamp),
# without pip's cache (it would keep another 3 GB of wheels that nothing installs again).
HF_VENV := .venv-hf
HF_STAMP := $(HF_VENV)/.installed
# pip of that environment (a variable so that tests/test_environment.py can make it fail).
HF_PIP = $(HF_VENV)/bin/python -m pip
# The environment's packages by uv, which downloads and unpacks side by side: 2.8 minutes here
# against pip's 4.3 for the same resolution (2026-12-08; the set-up's longest step, and make
# test waits for it). pip still installs uv itself and the lab's own package.
HF_UV = $(HF_VENV)/bin/uv pip
# What pip printed while it installed the environment, read when the install failed.
HF_LOG := .lab/hf-runtime-install.log
# Free disk it needs while it installs: measured here (2026-12-07), the install takes 12.2 GB at
# its peak (pip keeps the unpacked downloads until the last package is in) and leaves 9.2 GB;
# 2 GB more for what make test's other set-up steps write beside it.
HF_DISK_GB := 14
# Whole GB free on the disk that holds the lab (a shell expression for the recipes).
FREE_GB = $$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}')
# Written instead of .venv-hf when `make test` found too little disk for it, or ran out of disk
# while installing it (the reason inside); the Hugging Face tests then skip with that reason,
# also under CI: the runtime is an optional extra, and the machine's disk is not the lab's to fix.
HF_SKIPPED := .lab/hf-runtime-skipped
hf-runtime: $(STAMP)
	@$(MAKE) --no-print-directory $(HF_STAMP)

# make test: the same environment when the disk has room for it, or when an install was begun
# (as the stamp's own rule decides: a half-built .venv-hf is finished, not skipped, since the
# tests would find its python); otherwise says so loudly. The free disk read before the install
# can still run out during it (other setup steps write beside it under make -j): then the
# half-built environment is removed and the runtime skipped, loudly, as if there were no room.
# Any other failure of the install fails make test.
hf-runtime-if-room: $(STAMP)
	@rm -f $(HF_SKIPPED)
	@mkdir -p $(dir $(HF_SKIPPED))
	@if [ -f $(HF_STAMP) ] || [ -x $(HF_VENV)/bin/python ] || [ "$(FREE_GB)" -ge $(HF_DISK_GB) ]; then \
		$(MAKE) --no-print-directory $(HF_STAMP) && exit 0; \
		grep -q "No space left on device" $(HF_LOG) 2>/dev/null || exit 1; \
		rm -rf $(HF_VENV); \
		echo "make hf-runtime ran out of disk while it installed; $(FREE_GB) GB are free without it" \
			"(it needs about $(HF_DISK_GB) GB)" > $(HF_SKIPPED); \
	else \
		echo "make hf-runtime needs about $(HF_DISK_GB) GB of free disk; $(FREE_GB) GB were free when make test ran" > $(HF_SKIPPED); \
	fi; \
	echo "!!! NOT INSTALLED: the optional Hugging Face runtime ($$(cat $(HF_SKIPPED))); its tests skip." >&2

$(HF_STAMP): $(STAMP)
	@free=$(FREE_GB); \
	if [ ! -x $(HF_VENV)/bin/python ] && [ "$$free" -lt $(HF_DISK_GB) ]; then \
		echo "make hf-runtime needs about $(HF_DISK_GB) GB of free disk (12.2 GB at the install's peak, 9.2 GB" \
		"after it); $$free GB are free here." >&2; exit 1; fi
	test -x $(HF_VENV)/bin/python || $(PYTHON) -m venv $(HF_VENV)
	@mkdir -p $(dir $(HF_LOG))
	$(HF_PIP) install -qq uv==0.13.10 > $(HF_LOG) 2>&1 || { cat $(HF_LOG) >&2; exit 1; }
	$(HF_UV) install -q --python $(HF_VENV)/bin/python --no-cache torch==2.8.0 torchvision==0.23.0 mlserver==1.7.1 \
		mlserver-huggingface==1.7.1 transformers==4.53.3 tokenizers==0.21.4 optimum==1.27.0 onnx==1.23.2 \
		onnxruntime==1.32.0 timm==1.0.31 uvloop==0.21.0 numpy==2.4.6 > $(HF_LOG) 2>&1 \
		|| { cat $(HF_LOG) >&2; exit 1; }
	$(HF_PIP) install -qq --no-cache-dir --no-deps --no-build-isolation -e . > $(HF_LOG) 2>&1 \
		|| { cat $(HF_LOG) >&2; exit 1; }
	touch $@
