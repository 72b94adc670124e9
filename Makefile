# Two entry points for a fresh machine (see README):
#   make train   set everything up, then run the main job (IFactFormer-m on generated turbulence)
#   make test    set everything up, then run the test suite (what .ci/run does)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned and installed before the package: on these machines 2.13.0 is a local CPU build, while an
# unpinned torch pulls several GB of CUDA packages.
TORCH_VERSION := 2.13.0

# The nerfstudio viewer lives in its own environment: torchvision's registry wheels are CUDA builds that
# need the matching CUDA torch (which also runs on a CPU), so it is installed --isolated from the registry.
VIEWER_VENV ?= .venv-viewer
TORCHVISION_VERSION := 0.28.0

.PHONY: setup train test bench viewer-env

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

train: setup
	$(BIN)/python -m sciml fit --config configs/turbulence.yaml

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python tools/bench/ifactformer.py

viewer-env: $(VIEWER_VENV)/.installed

$(VIEWER_VENV)/.installed: pyproject.toml
	rm -rf $(VIEWER_VENV)
	$(PYTHON) -m venv $(VIEWER_VENV)
	$(VIEWER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VIEWER_VENV)/bin/python -m pip --isolated install --quiet torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)
	$(VIEWER_VENV)/bin/python -m pip install --quiet -e ".[viewer,viewer-test]"
	touch $@
