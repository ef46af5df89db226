# Transfer-learning course. A newcomer types two commands:
#   make course   run every lecture notebook (lite profile on a CPU) and build the site
#   make test     run the whole test suite
# Both create the environment first when it is missing or out of date.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
FMNIST_DEB := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# Extra pip options, e.g. PIP_OPTS="--no-index --find-links wheelhouse" for an offline install.
PIP_OPTS ?=
# Offline install from a folder made by `make wheelhouse` (docs/workshop.md):
#   make setup WHEELHOUSE=/media/usb/wheelhouse      no network needed
WHEELHOUSE ?=
WHEELHOUSE_OUT ?= wheelhouse
# --no-compile: skip precompiling ~21 000 .py files (half the install time); Python compiles
# the few it imports on first use.
WHEEL_OPTS := $(if $(WHEELHOUSE),--no-index --find-links $(abspath $(WHEELHOUSE))/wheels --no-compile)
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup data course test test-fast bench doctor release grade clean-venv help lab browser wheelhouse sandbox

help:
	@echo "make course  run every lecture notebook (lite profile) into build/ (runs setup first)"
	@echo "make setup   create .venv with the pinned packages and the offline data"
	@echo "make test    run the test suite (runs setup first if needed)"
	@echo "make release regenerate exercises/ from solutions/ (nbgrader)"
	@echo "make grade EXERCISE=00_concepts SUBMISSIONS=folder-or.zip   autograde a class"
	@echo "make bench   run the benchmarks and write bench-results/report.json"
	@echo "make doctor  print the environment report"
	@echo "make wheelhouse  offline installer folder for workshops (then: make setup WHEELHOUSE=folder)"
	@echo "make lab     open JupyterLab as a student (nbgrader assignment list + Validate)"
	@echo "make browser install headless Chromium + chromedriver for tests/test_browser.py"
	@echo "make sandbox install bubblewrap, which grading runs every submission in"

setup: $(STAMP) data

# Re-runs only when the pins change; otherwise this target takes a second.
$(STAMP): pyproject.toml requirements.lock
	$(if $(WHEELHOUSE),$(PYTHON) scripts/wheelhouse.py check $(WHEELHOUSE))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_OPTS) $(WHEEL_OPTS) --upgrade "pip>=24"
	$(PY) -m pip install --quiet $(PIP_OPTS) $(WHEEL_OPTS) -c requirements.lock -e .
	@touch $@

# Fashion-MNIST: the Debian package when apt is available, else the copy in WHEELHOUSE,
# else a sha256-checked download; then any of the articles' models a WHEELHOUSE holds.
data: $(STAMP)
	@if [ -f $(FMNIST_DEB) ] || $(PY) -c "from xfer_helpers import assets; assets.asset_path('fashion_mnist')" 2>/dev/null; then \
	  echo "Fashion-MNIST: present"; \
	elif [ -n "$(WHEELHOUSE)" ]; then \
	  $(PY) scripts/wheelhouse.py install-data $(WHEELHOUSE); \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null; \
	elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
	  sudo apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  XFER_ONLINE=1 $(VENV)/bin/xfer download fashion_mnist; \
	fi
	$(if $(WHEELHOUSE),$(PY) scripts/wheelhouse.py install-models $(WHEELHOUSE))

course: setup
	$(PY) scripts/run_course.py

doctor: setup
	$(VENV)/bin/xfer doctor

# Everything but the smoke runs (the lecture notebooks again, at the grading sizes: the lite
# run covers the same cells). TEST_WORKERS pytest processes share the tests out (pytest-xdist;
# tests that share a graded class or a loaded model stay together, see tests/xdist_groups.py).
TEST_WORKERS ?= 2
test: setup sandbox
	$(PY) -m pytest -m "not smoke" -n $(TEST_WORKERS) --dist loadgroup

# Quick loop while developing: skips tests marked slow; runs each lecture at the grading sizes.
test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup
	$(PY) benchmarks/run.py

# Regenerate exercises/ from solutions/ with nbgrader (never edit exercises/ by hand).
release: setup
	$(PY) -m xfer_helpers.grading release

# Grade a class: make grade EXERCISE=00_concepts SUBMISSIONS=path/to/folder-or.zip [JOBS=2]
grade: setup sandbox
	$(PY) -m xfer_helpers.grading grade $(EXERCISE) $(SUBMISSIONS) --out grades/$(EXERCISE) --jobs $(or $(JOBS),1)

# JupyterLab for students: nbgrader's Assignments tab and Validate button, without the
# instructor tools. lab/ holds that configuration (see lab/README.md). Extra options: LAB_OPTS="--port 8899".
lab: setup
	@mkdir -p build/exchange
	JUPYTER_CONFIG_DIR=$(abspath lab) JUPYTERLAB_SETTINGS_DIR=$(abspath build/lab/user-settings) \
	  JUPYTERLAB_WORKSPACES_DIR=$(abspath build/lab/workspaces) \
	  $(VENV)/bin/jupyter lab --notebook-dir=$(abspath .) $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_OPTS)

# Headless Chromium for tests/test_browser.py: Debian's chromium + chromium-driver (same version).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "Chromium: present ($$(chromium --version 2>/dev/null))"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -qq chromium chromium-driver >/dev/null \
	    || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)) \
	    && echo "Chromium: installed ($$(chromium --version 2>/dev/null))"; \
	elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
	  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
	  echo "Chromium not found. Install Chromium and a matching chromedriver (Debian/Ubuntu:"; \
	  echo "'apt-get install chromium chromium-driver'; macOS: 'brew install --cask chromium chromedriver')."; \
	  exit 1; \
	fi

# Debian's bubblewrap: `xfer grade` and nbgrader's autograde run each submission's kernel
# in a bwrap sandbox (xfer_helpers/sandbox.py; docs/instructor.md says why).
sandbox:
	@if command -v bwrap >/dev/null; then \
	  echo "bubblewrap: present ($$(bwrap --version))"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -qq bubblewrap >/dev/null \
	    || (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null)) \
	    && echo "bubblewrap: installed ($$(bwrap --version))"; \
	elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
	  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	else \
	  echo "bubblewrap (bwrap) not found. Grading needs it to seal off each submission:"; \
	  echo "install it with your package manager (Debian/Ubuntu/Fedora: package 'bubblewrap')."; \
	  exit 1; \
	fi

# Offline installer for workshops (docs/workshop.md): wheels, Fashion-MNIST and the course in
# one folder, $(WHEELHOUSE_OUT) (default wheelhouse/). Needs the network once.
# MODELS=resnet18,vgg16,vgg16_keras,bert_base_uncased adds the articles' models (hash-checked downloads).
wheelhouse: setup
	$(if $(MODELS),XFER_ONLINE=1) $(PY) scripts/wheelhouse.py build $(WHEELHOUSE_OUT) $(if $(MODELS),--models $(MODELS))

clean-venv:
	rm -rf $(VENV)
