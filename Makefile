# Quick start: `make benchmark` (set up + the main job) and `make test` (set up + the whole test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared

.PHONY: benchmark test test-fast setup-edge setup-dev lint arm64-check wheel clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# What a device needs, plus matplotlib for the benchmark's plot (a regular, non-editable install).
setup-edge: $(VENV)/bin/python
	$(PY) -m pip install --quiet ".[edge,plot]"

setup-dev: $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[train,dev,pretrained]"

# The main job: latency and accuracy of every bundled model variant (and the peer, when ../shared is there).
benchmark: setup-edge
	$(PY) -m benchmarks.latency $(if $(wildcard $(SHARED)/data/fer2013),--data $(SHARED)/data/fer2013,) --out out/benchmarks

# The whole test suite (tiny synthetic data and models; real ../shared data where present).
test: setup-dev
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The fast tier: ruff and every test not marked slow (a few minutes on 2 cores).
test-fast: setup-dev
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow and not arm64"

lint: setup-dev
	$(PY) -m ruff check .

arm64-check: setup-dev
	$(PY) -m pytest -q -m arm64 -rs tests/test_arm64.py

# A wheel in dist/ (runtime files only: .tflite models with their cards, the BlazeFace detectors).
wheel: $(VENV)/bin/python
	$(PY) -m pip wheel --quiet --no-deps -w dist .

# Everything the targets above create: the venv, build outputs, caches and benchmark results in out/.
clean:
	rm -rf $(VENV) out build dist *.egg-info .pytest_cache .ruff_cache .arm64
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
