# Quick start: `make benchmark` (set up + the main job) and `make test` (set up + the whole test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared

.PHONY: benchmark test setup-edge setup-dev lint arm64-check clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

setup-edge: $(VENV)/bin/python
	$(PY) -m pip install --quiet ".[edge]"

setup-dev: $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[train,dev]"

# The main job: latency and accuracy of every bundled model variant (and the peer, when ../shared is there).
benchmark: setup-edge
	$(PY) -m benchmarks.latency $(if $(wildcard $(SHARED)/data/fer2013),--data $(SHARED)/data/fer2013,) --out out/benchmarks

# The whole test suite (tiny synthetic data and models; real ../shared data where present).
test: setup-dev
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: setup-dev
	$(PY) -m ruff check .

arm64-check: setup-dev
	$(PY) -m pytest -q -m arm64 -rs

clean:
	rm -rf $(VENV) out .pytest_cache
