# mlserver-lab: every target sets up .venv itself (idempotent, keyed on requirements.txt).
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
LAB_ENV_VARS := JUPYTER_CONFIG_DIR JUPYTER_DATA_DIR JUPYTER_RUNTIME_DIR IPYTHONDIR MPLCONFIGDIR NPM_CONFIG_CACHE
# Debian packages some tests use; installed by `make test` when running as root.
SYSTEM_PACKAGES := prometheus chromium chromium-driver

.PHONY: lab lab-env test test-fast weights notebooks release grade bench soak hf-runtime venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq -r requirements.txt
	$(PY) -m pip install -qq --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Pretrained weights when the hub is reachable; otherwise a random checkpoint, with a loud warning.
$(WEIGHTS): | $(STAMP)
	$(PY) -m labkit.weights prepare --allow-random

weights: $(STAMP)
	$(PY) -m labkit.weights prepare --allow-random

lab: $(STAMP) $(WEIGHTS)
	@echo "JupyterLab on http://$(LAB_HOST):$(LAB_PORT)/lab (the token is in the URL printed below)"
	$(VENV)/bin/jupyter lab --no-browser --ip=$(LAB_HOST) --port=$(LAB_PORT) --notebook-dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

lab-env:
	@$(foreach name,$(LAB_ENV_VARS),echo $(name)=$($(name));)

# Lint, the unit and live-server tests, then every solution notebook under nbval (quick mode);
# prints how many MLServer processes the run started (each start costs 10-20 s).
START_LOG := $(LAB_STATE)/mlserver-starts.log
test: $(STAMP) $(WEIGHTS)
	tools/system-deps.sh $(SYSTEM_PACKAGES)
	$(VENV)/bin/ruff check labkit tests benchmarks tinyvit
	mkdir -p $(LAB_STATE) && rm -f $(START_LOG)
	LAB_START_LOG=$(START_LOG) $(PY) -m pytest --durations=12 tests
	LAB_START_LOG=$(START_LOG) LAB_QUICK=1 $(PY) -m pytest --nbval-lax -p no:cacheprovider notebooks/solutions
	@echo "MLServer starts in this run: $$(cat $(START_LOG) 2>/dev/null | wc -l)"

# The edit-test loop: lint, then every test that starts no MLServer (under a minute).
test-fast: $(STAMP) $(WEIGHTS)
	$(VENV)/bin/ruff check labkit tests benchmarks tinyvit
	$(PY) -m pytest -q -m "not slow" tests

# Regenerate solution notebooks (with outputs) from notebooks/source/*.py; NB=01_first_service for one.
notebooks: $(STAMP) $(WEIGHTS)
	LAB_QUICK=1 $(PY) -m labkit.notebooks build $(NB)
	$(PY) -m labkit.notebooks release --force

# Student versions into notebooks/ with nbgrader; FORCE=1 overwrites notebooks changed since the last release.
release: $(STAMP)
	$(PY) -m labkit.notebooks release $(if $(FORCE),--force)


# Autograde hand-ins with nbgrader: SUBMISSIONS=folder with one subfolder per student; OUT=grading.
grade: $(STAMP) $(WEIGHTS)
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade SUBMISSIONS=<folder> [OUT=grading]"; exit 2)
	$(PY) -m labkit.grading $(SUBMISSIONS) $(or $(OUT),grading)

# Optional: MLServer's HuggingFace runtime in its own environment (.venv-hf, about 2 minutes;
# pulls tensorflow and optimum). Notebook 04 uses it when it exists.
hf-runtime: $(STAMP)
	test -x .venv-hf/bin/python || $(PYTHON) -m venv .venv-hf
	.venv-hf/bin/python -m pip install -qq torch==2.14.1 torchvision==0.29.1 mlserver==1.7.1 \
		mlserver-huggingface==1.7.1 uvloop==0.21.0 timm==1.0.31

# Side-by-side serving benchmark; writes benchmarks/results/<date>.json and .md.
bench: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/serving.py

# Soak: 16 clients for SECONDS (default 300) against 2 workers with adaptive batching, every
# answer checked; writes benchmarks/results/soak-<date>.json.
soak: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/soak.py --seconds $(or $(SECONDS),300)

clean:
	rm -rf $(VENV) .venv-hf weights
