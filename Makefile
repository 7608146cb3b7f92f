# Quick start: `make benchmark` (set up + the main job) and `make test` (set up + the whole test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
# MediaPipe Tasks (the mobile tests' real client and examples/) has a venv of its own: it brings
# opencv-contrib-python 5, which clashes with the opencv-python-headless<5 of $(VENV).
MOBILE_VENV ?= .venv-mobile
MEDIAPIPE ?= mediapipe==1.2.2
# The TFLite Task Library (tflite-support) pins protobuf 3.20, which clashes with TensorFlow's: a venv of
# its own too. It needs the system library libusb-1.0-0 (apt-get install libusb-1.0-0); without it the
# Task Library tests skip and say so.
TASKLIB_VENV ?= .venv-tasklib
TASKLIB ?= tflite-support==0.4.4

.PHONY: benchmark test test-fast setup-edge setup-dev setup-mobile setup-tasklib setup-web lint arm64-check wheel clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# What the wheel is built from: a change to any of these reinstalls it.
WHEEL_INPUTS := pyproject.toml README.md LICENSE THIRD_PARTY_NOTICES.md \
	$(shell find train convert edge_runtime benchmarks models -name '*.py' -not -path '*/__pycache__/*') \
	$(wildcard models/*_int8.tflite models/*_int8.json edge_runtime/face_detection/*.tflite)
EDGE_STAMP := $(VENV)/.edge-installed

# What a device needs, plus matplotlib for the benchmark's plot (a regular, non-editable install), installed
# again only when the wheel's inputs changed.
setup-edge: $(EDGE_STAMP)

$(EDGE_STAMP): $(VENV)/bin/python $(WHEEL_INPUTS)
	$(PY) -m pip install --quiet ".[edge,plot]"
	touch $@

# An editable install replaces the regular one: the next setup-edge installs it again.
setup-dev: $(VENV)/bin/python
	rm -f $(EDGE_STAMP)
	$(PY) -m pip install --quiet -e ".[train,dev,pretrained]"

setup-mobile: $(MOBILE_VENV)/.installed

$(MOBILE_VENV)/.installed:
	$(PYTHON) -m venv $(MOBILE_VENV)
	$(MOBILE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MOBILE_VENV)/bin/python -m pip install --quiet "$(MEDIAPIPE)"
	touch $@

setup-tasklib: $(TASKLIB_VENV)/.installed

$(TASKLIB_VENV)/.installed:
	$(PYTHON) -m venv $(TASKLIB_VENV)
	$(TASKLIB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TASKLIB_VENV)/bin/python -m pip install --quiet "$(TASKLIB)" "opencv-python-headless>=4.8,<5"
	touch $@

# MediaPipe Tasks for Web from npm (tests/web/package-lock.json), run in headless Chromium by the tests
# (apt-get install chromium; without npm or Chromium those tests skip and say so).
setup-web: tests/web/node_modules/.package-lock.json

tests/web/node_modules/.package-lock.json: tests/web/package-lock.json
	-cd tests/web && npm ci --no-audit --no-fund

# The main job: latency and accuracy of every bundled model variant (and the peer, when ../shared is there).
benchmark: setup-edge
	$(PY) -m benchmarks.latency $(if $(wildcard $(SHARED)/data/fer2013),--data $(SHARED)/data/fer2013,) --out out/benchmarks

# The whole test suite (tiny synthetic data and models; real ../shared data where present).
test: setup-dev setup-mobile setup-tasklib setup-web
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
	rm -rf $(VENV) $(MOBILE_VENV) $(TASKLIB_VENV) tests/web/node_modules out build dist *.egg-info .pytest_cache .ruff_cache .arm64
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
