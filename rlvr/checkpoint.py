"""Atomic training checkpoints that a killed run resumes from.

A checkpoint is a directory ``RUN_DIR/checkpoints/step-000042/`` holding:
  model/          ``save_pretrained`` weights + tokenizer (loadable by transformers and vLLM)
  optimizer.pt    optimizer state dict
  scheduler.pt    LR scheduler state dict (if any)
  rng.pt          Python, NumPy and torch RNG states (+ CUDA when present)
  state.json      the trainer's own state: step, data position, anything JSON-serialisable
  config.yaml     the resolved config
It is written into a temporary sibling directory, fsynced, then renamed into place, and only then
is ``checkpoints/latest`` (a one-line file) replaced atomically. A run killed at any moment leaves
either the previous complete checkpoint or the new complete one, never a partial one that
`latest_checkpoint` would pick. Cleanup removes only checkpoint directories this module named
(``step-*`` and ``.tmp-step-*`` under the run's own ``checkpoints/``).

Try it::

    >>> from rlvr.checkpoint import save_checkpoint, latest_checkpoint, load_checkpoint  # doctest: +SKIP
    >>> path = save_checkpoint(run_dir, step, model=m, tokenizer=tok, optimizer=opt, state={"epoch": 0})
    >>> state = load_checkpoint(latest_checkpoint(run_dir), model=m, optimizer=opt)

`model_dir` finds the model in a checkpoint or run directory, and `load_adapter_model` loads a
LoRA checkpoint's adapter merged into its base (``rlvr eval`` and ``rlvr generate`` use both).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointError", "latest_checkpoint", "load_adapter_model", "load_checkpoint", "load_trained", "model_dir", "rng_state",
           "save_checkpoint", "set_rng_state"]

_STEP_DIR = re.compile(r"^step-(\d{6,})$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or does not fit the model."""


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: Any,
    tokenizer: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    state: Mapping[str, Any] | None = None,
    config_yaml: str | None = None,
    extra: Mapping[str, Any] | None = None,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `step` atomically and return its directory.

    `model` is anything with ``save_pretrained`` (unwrap DDP/accelerate wrappers first). `extra`
    maps file stems to objects saved with ``torch.save`` (e.g. a value head's state dict).
    `keep_last` older complete checkpoints are kept (0 keeps all).
    """
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:06d}"
    tmp = ckpt_root / f".tmp-step-{step:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save_pretrained(tmp / "model", safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp / "model")
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if scheduler is not None:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    for stem, obj in (extra or {}).items():
        torch.save(obj, tmp / f"{stem}.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **dict(state or {})}, indent=1, sort_keys=True))
    if config_yaml is not None:
        (tmp / "config.yaml").write_text(config_yaml)
    (tmp / "COMPLETE").write_text(f"{step}\n")
    _fsync_tree(tmp)
    if final.exists():  # re-saving the same step (e.g. after a resume): swap the old one out first
        old = ckpt_root / f".old-step-{step:06d}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    _fsync_dir(ckpt_root)
    _write_text_atomic(ckpt_root / "latest", final.name + "\n")
    if keep_last > 0:
        for old_dir in _complete_steps(ckpt_root)[:-keep_last]:
            shutil.rmtree(old_dir)
    return final


def _complete_steps(ckpt_root: Path) -> list[Path]:
    dirs = [p for p in ckpt_root.iterdir() if _STEP_DIR.match(p.name) and (p / "COMPLETE").exists()]
    return sorted(dirs, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None. Stray temp directories are ignored."""
    ckpt_root = Path(run_dir) / "checkpoints"
    if not ckpt_root.is_dir():
        return None
    pointer = ckpt_root / "latest"
    if pointer.exists():
        named = ckpt_root / pointer.read_text().strip()
        if (named / "COMPLETE").exists():
            return named
    complete = _complete_steps(ckpt_root)
    return complete[-1] if complete else None


def load_checkpoint(
    path: str | Path,
    *,
    model: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG states from `path`; return state.json.

    The model's weights are loaded in place from ``model/`` (safetensors), so wrappers and the
    optimizer's parameter references stay valid.
    """
    path = Path(path)
    if not (path / "COMPLETE").exists():
        raise CheckpointError(f"{path}: not a complete rlvr checkpoint (no COMPLETE marker)")
    if model is not None:
        from safetensors.torch import load_file

        files = sorted((path / "model").glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{path / 'model'}: no safetensors weights")
        weights: dict[str, torch.Tensor] = {}
        for f in files:
            weights.update(load_file(f))
        missing, unexpected = model.load_state_dict(weights, strict=False)
        tied = set(getattr(model, "_tied_weights_keys", None) or [])
        missing = [k for k in missing if k not in tied and not k.endswith("lm_head.weight")]
        if missing or unexpected:
            raise CheckpointError(f"{path}: weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if hasattr(model, "tie_weights"):
            model.tie_weights()
    if optimizer is not None and (path / "optimizer.pt").exists():
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    if scheduler is not None and (path / "scheduler.pt").exists():
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    if restore_rng:
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "state.json").read_text())


def load_extra(path: str | Path, stem: str) -> Any:
    """An object saved through `save_checkpoint(extra={stem: obj})`."""
    return torch.load(Path(path) / f"{stem}.pt", weights_only=False)


def model_dir(path: str | Path) -> Path:
    """The model directory inside what a user points at: a checkpoint ``step-N/`` -> ``step-N/model``,
    a run directory -> ``final/`` (else its newest checkpoint's model), anything else as given."""
    p = Path(path)
    if (p / "COMPLETE").exists() and (p / "model").is_dir():
        return p / "model"
    if (p / "checkpoints").is_dir() and not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
        if (p / "final" / "config.json").exists():
            return p / "final"
        ckpt = latest_checkpoint(p)
        if ckpt is not None:
            return ckpt / "model"
    return p


def load_adapter_model(path: str | Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(model, tokenizer) from a LoRA adapter directory (``adapter_config.json``), merged into its base.

    The base is the adapter's ``base_model_name_or_path``; a relative one that does not exist from
    the current directory is looked up next to the run directory the adapter came from."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.io import InputError

    path = Path(path)
    base = Path(PeftConfig.from_pretrained(path).base_model_name_or_path)
    if not base.is_absolute() and not base.exists():
        for parent in path.resolve().parents:  # runs/x/tiny-model saved from the directory above runs/
            if (parent / base).exists():
                base = parent / base
                break
            if (parent / base.name).exists():
                base = parent / base.name
                break
    if not (base / "config.json").exists() and str(base).count("/") != 1:
        raise InputError(f"{path}: the adapter's base model {base} is not there (adapter_config.json "
                         "base_model_name_or_path); move the adapter beside it or merge it where it was trained")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    model = PeftModel.from_pretrained(model, path).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(path if (path / "tokenizer_config.json").exists() else base)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_trained(path: str | Path, dtype: str = "float32") -> tuple[Any, Any]:
    """(model, tokenizer) for sampling from `path`: "demo", a model directory or hub name, a run
    directory (its final/), a checkpoint, or a LoRA adapter directory (merged into its base)."""
    from rlvr.models import load_model_and_tokenizer

    if str(path) in ("demo", "demo-tool"):
        return load_model_and_tokenizer(path, dtype=dtype)
    where = model_dir(path)
    if (where / "adapter_config.json").exists():
        return load_adapter_model(where, dtype=getattr(torch, dtype) if dtype != "auto" else torch.float32)
    return load_model_and_tokenizer(where if where.exists() else path, dtype=dtype)
