"""The end of a training run: the final model directory, and stopping cleanly on SIGTERM.

`write_final(run_dir, model, tokenizer, config_yaml, max_new_tokens)` writes ``RUN_DIR/final/``
atomically (a temporary sibling renamed into place), ready for transformers, vLLM,
``rlvr eval --model RUN_DIR/final`` and ``rlvr generate --model RUN_DIR/final``:

    final/
      config.json, model.safetensors     save_pretrained of the full model (LoRA runs: merged)
      tokenizer files                    the tokenizer the run trained with
      generation_config.json             eos/pad ids and the run's max_new_tokens
      config.yaml                        the resolved training config
      adapter/                           LoRA runs only: the adapter alone (peft save_pretrained)

`GracefulStop` turns the first SIGTERM (a scheduler's preemption, ``kill PID``) into a request
the training loop reads after each step: it then saves a checkpoint, says so, and returns. A
second SIGTERM, or one outside the loop, ends the process as usual.

What it does not do: write checkpoints (`rlvr.checkpoint`), or decide when to stop (the loop).
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["GracefulStop", "write_final"]


def _is_peft(model: Any) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def write_final(run_dir: str | Path, model: Any, tokenizer: Any, config_yaml: str | None = None,
                max_new_tokens: int | None = None, name: str = "final") -> Path:
    """Write the run's model to ``run_dir/name`` (default ``final/``) atomically; returns the directory."""
    out = Path(run_dir) / name
    tmp = out.with_name(f".tmp-{name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    full = model
    if _is_peft(model):
        model.save_pretrained(tmp / "adapter", safe_serialization=True)
        full = copy.deepcopy(model).merge_and_unload()  # the training model keeps its adapter
    gen = getattr(full, "generation_config", None)
    if gen is not None:
        gen = copy.deepcopy(gen)
        if gen.eos_token_id is None:
            gen.eos_token_id = tokenizer.eos_token_id
        if gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
        if max_new_tokens is not None:
            gen.max_new_tokens = max_new_tokens
        full.generation_config = gen
    full.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if config_yaml is not None:
        (tmp / "config.yaml").write_text(config_yaml)
    if out.exists():
        old = out.with_name(f".old-{name}-{os.getpid()}")
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out)
    return out


class GracefulStop:
    """``with GracefulStop() as stop:`` ... ``if stop.requested: save and return``.

    Installs a SIGTERM handler (main thread only; elsewhere it does nothing) that records the
    request and prints one line; a second SIGTERM restores the previous handler and re-raises it.
    """

    def __init__(self, label: str = "rlvr train"):
        self.label, self.requested, self._previous = label, False, None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second one: stop now
            signal.signal(signum, self._previous or signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.requested = True
        print(f"{self.label}: SIGTERM received: finishing this step, then saving a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
