# Two entry points for a fresh machine (see README):
#   make train   set everything up, then run the main job (IFactFormer-m on generated turbulence)
#   make test    set everything up, then run the test suite (what .ci/run does)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned and installed before the package: on these machines 2.13.0 is a local CPU build, while an
# unpinned torch pulls several GB of CUDA packages.
TORCH_VERSION := 2.13.0

.PHONY: setup train test bench

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
