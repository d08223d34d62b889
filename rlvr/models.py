"""Model paths and loading: one place that turns a `--model` argument into a model and tokenizer.

`resolve_model_path("demo")` is the shipped tiny arithmetic base model; a local directory is used
as is; anything else is treated as a hub name and loaded through transformers (which needs the
network or a populated HF cache). A broken path gets an error that names it and says what is
missing, instead of a transformers traceback.

Try it::

    >>> from rlvr.models import resolve_model_path
    >>> resolve_model_path("demo").name
    'tiny-arith'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlvr.io import InputError

__all__ = ["ModelLoadError", "load_model_and_tokenizer", "quiet_new_head", "resolve_model_path"]


class ModelLoadError(InputError):
    """A model path that does not hold a loadable model."""


def resolve_model_path(path: str | Path) -> Path | str:
    """"demo" -> the shipped base model; an existing directory -> itself; else a hub name (str)."""
    if str(path) == "demo":
        from rlvr.demo.pretrain import ensure_base_model

        return ensure_base_model()
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelLoadError(f"model path {p} is a file; give the directory that holds config.json")
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"model path {p}: no config.json (is this a save_pretrained directory?)")
        return p
    if str(path).startswith((".", "/", "~")) or str(path).count("/") > 1:
        raise ModelLoadError(f"model path {path}: no such directory")
    return str(path)


def load_model_and_tokenizer(path: str | Path, *, dtype: str = "float32", padding_side: str = "left") -> tuple[Any, Any]:
    """(model, tokenizer) for a causal LM at `path` (see `resolve_model_path`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve_model_path(path)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}
    if dtype not in torch_dtype:
        raise ModelLoadError(f"dtype {dtype!r}: use one of {sorted(torch_dtype)}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype[dtype])
    except OSError as e:
        raise ModelLoadError(f"model {path!s} could not be loaded from {where!s}: {e}") from e
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@contextlib.contextmanager
def quiet_new_head() -> Iterator[None]:
    """Silence transformers' load report while a head is added on purpose (a reward model's or a
    critic's fresh ``score`` layer is "missing" from a causal LM checkpoint by design)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
