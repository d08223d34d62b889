# make demo: set up .venv and run the main job on its embedded default (a tiny model on CPU).
# make test: set up .venv and run the test suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev

.PHONY: venv demo test lint bench clean-venv

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh "$(VENV)" "$(PY)" "$(EXTRAS)"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/rlvr verify --verifier math --input examples/math_completions.jsonl --output runs/demo/scored.jsonl

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check rlvr verifiers sandboxes tasks tests bench

bench: $(STAMP)
	bash scripts/install.sh "$(VENV)" "$(PY)" "dev,bench"
	$(BIN)/python bench/verifiers.py
