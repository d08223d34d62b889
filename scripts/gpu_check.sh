#!/usr/bin/env bash
# GPU readiness: bf16 GRPO steps (HF sampler, gradient checkpointing, LoRA) on a SmolLM2-135M-shaped
# random model; prints a table. Needs torch, transformers, accelerate, peft; no vLLM, no network.
#   bash scripts/gpu_check.sh          # one CUDA GPU
#   bash scripts/gpu_check.sh --cpu    # dry run of the same code path on CPU
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
[ -x .venv/bin/python ] && py=${PYTHON:-.venv/bin/python}
if ! "$py" -c "import rlvr.verifiers, rlvr.tasks" 2>/dev/null; then
  # Not pip-installed (a bare GPU machine): lay the package out as pyproject's package-dir does
  # (verifiers/, sandboxes/, tasks/ are rlvr.verifiers, rlvr.sandboxes, rlvr.tasks) in a temp dir.
  pkgs=$(mktemp -d)
  trap 'rm -rf "$pkgs"' EXIT
  cp -r rlvr "$pkgs/rlvr"
  for d in verifiers sandboxes tasks; do ln -s "$PWD/$d" "$pkgs/rlvr/$d"; done
  export PYTHONPATH="$pkgs${PYTHONPATH:+:$PYTHONPATH}"
fi
"$py" -c "import torch, transformers, accelerate, peft; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$py" scripts/gpu_check.py "$@"
