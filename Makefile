# mlserver-lab: every target sets up .venv itself (idempotent, keyed on requirements.txt).
# The student's part (venv, weights, lab) is tools/lab.mk, which is also the hand-out's Makefile.
include tools/lab.mk
# The tests' own tools (requirements-dev.txt) on top of the lab's .venv: installed by the test
# targets only, so a student's `make lab` never downloads them.
DEV_STAMP := $(VENV)/.dev-installed-$(shell cat requirements-dev.txt | sha1sum | cut -c1-12)
$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(PY) -m pip install -qq -r requirements-dev.txt
	rm -f $(VENV)/.dev-installed-*
	touch $@

# Debian packages some tests use; installed by `make test` when running as root.
SYSTEM_PACKAGES := prometheus chromium chromium-driver

# configurable-http-proxy, from npm, for the multi-user JupyterHub test (tests/test_jupyterhub.py).
PROXY := $(LAB_STATE)/node/node_modules/.bin/configurable-http-proxy
$(PROXY):
	@if command -v npm >/dev/null; then \
		npm install --silent --prefix $(LAB_STATE)/node --no-save --no-package-lock configurable-http-proxy@5.3.0; \
	else echo "note: no npm, so no configurable-http-proxy; the JupyterHub test will skip." >&2; fi

.PHONY: test test-setup types-early system-deps test-fast notebooks release handout grade bench-grading bench bench-starts bench-memory bench-breakdown bench-sweep bench-shared bench-validate peers notebook-memory soak clean

# The tests' random checkpoint and its reference export (tests/helpers/weights.py), made once
# per installed torch and timm: every session after finds them instead of 12-20 s of export.
TEST_WEIGHTS := $(LAB_STATE)/test-weights/.made-$(notdir $(STAMP))
$(TEST_WEIGHTS): $(DEV_STAMP)
	$(PY) -m tests.helpers.weights
	rm -f $(LAB_STATE)/test-weights/.made-*
	touch $@

# Lint, the unit and live-server tests, then every solution notebook under nbval (quick mode),
# by tools/run_tests.py: it writes the run's record (phases, slowest tests, MLServer starts by
# kind, the machine's load) to benchmarks/results/test-runs/, also when a phase fails.
START_LOG := $(LAB_STATE)/mlserver-starts.log
TEST_STARTED := $(shell date +%s.%N)
# The optional Hugging Face runtime's environment too (make hf-runtime, once: about 2.4 minutes and
# 9.2 GB on a fresh machine), so that its tests and notebook 04's cells that use it run; on a
# machine without the disk for it, they skip and say why (hf-runtime-if-room).
# The tests in two streams side by side (docs/testing.md); `make test TEST_MODE=--serial` runs
# them in one.
TEST_MODE ?=
# The set-up's parts side by side (-j): the lab's .venv, the proxy from npm and the Debian packages
# download and install at once; .venv-hf after .venv, when the disk still has room for it (the
# two at once need about 20 GB at their peak: a run here ran out of disk).
test:
	@$(MAKE) --no-print-directory -j4 test-setup types-early
	$(PY) tools/run_tests.py --started $(TEST_STARTED) --start-log $(START_LOG) --state $(LAB_STATE) \
		--types-from $(TYPES_EARLY) $(TEST_MODE)

# mypy during make test's set-up, as soon as the tests' tools are in: it runs on the core that the
# set-up's longest step (the Hugging Face environment, after .venv) leaves idle, instead of half
# a minute of a test stream; tools/run_tests.py reports its phase and fails the run at its end
# when it failed.
TYPES_EARLY := $(LAB_STATE)/types-early.json
types-early: $(DEV_STAMP)
	$(PY) tools/run_tests.py --types-to $(TYPES_EARLY) --state $(LAB_STATE)

test-setup: $(DEV_STAMP) $(WEIGHTS) $(TEST_WEIGHTS) $(PROXY) hf-runtime-if-room system-deps

system-deps:
	tools/system-deps.sh $(SYSTEM_PACKAGES)

# The edit-test loop: lint, type check, then every test not marked slow (under a minute). No
# plugin loads itself (schemathesis, hypothesis, nbval: 3 s of imports none of these tests use).
test-fast: $(DEV_STAMP) $(WEIGHTS) $(TEST_WEIGHTS)
	$(VENV)/bin/ruff check labkit tests benchmarks tinyvit tools
	$(VENV)/bin/mypy
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(PY) -m pytest -q -m "not slow" tests

# Regenerate solution notebooks (with outputs) from notebooks/source/*.py; NB=01_first_service for one.
notebooks: $(STAMP) $(WEIGHTS)
	LAB_QUICK=1 $(PY) -m labkit notebooks build $(NB)
	$(PY) -m labkit notebooks release --force

# Student versions into notebooks/ with nbgrader; FORCE=1 overwrites notebooks changed since the last release.
release: $(STAMP)
	$(PY) -m labkit notebooks release $(if $(FORCE),--force)


# The student hand-out: handout/mlserver-lab/ and handout/mlserver-lab.tar.gz (OUT=folder);
# student notebooks, service, helpers and `make lab`, without solutions or hidden checks.
# Needs only the standard library: no .venv is built for it.
handout:
	$(PYTHON) -m labkit handout $(or $(OUT),handout)

# Autograde hand-ins with nbgrader: SUBMISSIONS=folder with one subfolder per student; OUT=grading.
grade: $(STAMP) $(WEIGHTS)
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade SUBMISSIONS=<folder> [OUT=grading]"; exit 2)
	$(PY) -m labkit grade $(SUBMISSIONS) $(or $(OUT),grading)

# What grading a class costs: COPIES hand-ins of all seven notebooks (default 6; one alone first),
# one per core as `make grade`; writes benchmarks/results/grading-<date>.json and .md.
bench-grading: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/grading.py --alone --copies $(or $(COPIES),6)

# Side-by-side serving benchmark; writes benchmarks/results/<date>.json and .md.
bench: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/serving.py

# Seconds until a server is ready and its memory, beside a bare torch import (issue 25).
bench-starts: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/starts.py

# Memory and rate of the lab's service under a batching load, freed memory handed back (as shipped)
# or kept by glibc, side by side (tinyvit/freed_memory.py).
bench-memory: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/freed_memory.py

# The benchmark's peers, servers a user might pick instead of MLServer, each in an environment of
# its own (benchmarks/peers.py), with the same engine as the lab's OpenVINO runtime: NVIDIA Triton
# (make triton, tools/lab.mk: notebook 05 uses it too) and LitServe (a Python server with
# batching; about 300 MB). Once; make bench then adds their rows.
LITSERVE_STAMP := .venv-litserve/.installed
peers: $(TRITON_STAMP) $(LITSERVE_STAMP)
$(LITSERVE_STAMP):
	test -x .venv-litserve/bin/python || $(PYTHON) -m venv .venv-litserve
	.venv-litserve/bin/python -m pip install -qq --no-cache-dir litserve==0.2.19 openvino==2026.4.1 \
		pillow==13.0.0 numpy==2.4.6
	touch $@

# Where a served request's milliseconds and CPU go, stage by stage (issue 27).
bench-breakdown: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/breakdown.py

# Notebook 05's sweep as a student runs it in full mode, twice, on the lab's service: the numbers
# Exercise 3's model answer quotes (about 6 minutes; benchmarks/results/sweep-<date>.json and .md).
bench-sweep: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/sweep.py

# Each comparison the notebooks measure (02, 04, 05), quiet and beside a process spinning on one
# core, in alternating rounds: does the ratio that carries its conclusion hold on a shared CPU?
# About 15 minutes; writes benchmarks/results/shared-cpu-<date>.json and .md.
bench-shared: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/shared_cpu.py

# What the students' Validate button costs per notebook (the lab's Jupyter config, tools/jupyter):
# each solution notebook validated as the button does it; writes benchmarks/results/validate-<date>.
bench-validate: $(STAMP) $(WEIGHTS)
	JUPYTER_CONFIG_PATH=$(CURDIR)/tools/jupyter $(PY) benchmarks/validate.py

# Memory one student needs: each solution notebook in a kernel, peak PSS of the kernel and the
# servers it starts, and JupyterLab idle; writes benchmarks/results/notebook-memory-<date>.json,
# which deploy/jupyterhub/config.yaml's memory figures follow (tests/test_deploy_jupyterhub.py).
notebook-memory: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/notebook_memory.py

# Soak: 16 clients for SECONDS (default 300) against 2 workers with adaptive batching, every
# answer checked; writes benchmarks/results/soak-<date>.json.
soak: $(STAMP) $(WEIGHTS)
	$(PY) benchmarks/soak.py --seconds $(or $(SECONDS),300)

clean:
	rm -rf $(VENV) .venv-hf .venv-triton .venv-litserve weights
