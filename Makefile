# Two entry points: `make run` (dashboard with a demo workspace) and `make test` (the whole suite).
# Both create or reuse .venv and install only what is missing. torch goes in first, pinned to the
# CPU build that pip finds on this machine's disk, so no multi-GB CUDA build gets pulled.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PORT ?= 8501

.PHONY: run test lint bench install install-test chromium labelstudio

run: install
	$(BIN)/ftstudio up --port $(PORT)

# lint-imports checks the layering contracts in pyproject.toml before the suite runs.
test: install-test
	$(BIN)/lint-imports --no-cache
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check backend studio pages tests bench
	$(BIN)/ruff format --check backend studio pages tests bench

install: $(STAMP)

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e .
	touch $@

install-test: $(TEST_STAMP) chromium labelstudio

# Label Studio pins openai<2, so it gets its own venv (.venv-labelstudio) and a pre-migrated
# data-folder template; quick when both are there.
labelstudio: $(STAMP)
	bash scripts/labelstudio_venv.sh $(BIN)/python

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }

bench: install
	for f in bench/*.py; do echo "== $$f"; HF_HUB_OFFLINE=1 $(BIN)/python $$f || exit 1; done
