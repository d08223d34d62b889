"""The R1-Zero-style demos: tiny base models trained from scratch, then taught by GRPO.

- `rlvr.demo.corpus`: the addition demo's synthetic pretraining text, prompt template, held-out rule.
- `rlvr.demo.pretrain`: trains its base model (`python -m rlvr.demo.pretrain`) and
  `ensure_base_model()` returns the shipped copy in `rlvr/data/tiny-arith/` (model path "demo").
- `rlvr.demo.tool_corpus`, `rlvr.demo.tool_pretrain`: the same for the tool demo (products with a
  rare python call; `rlvr/data/tiny-tool/`, model path "demo-tool").
- `shipped_model(name)`: the directory behind the model path "demo" or "demo-tool".
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_MODELS = ("demo", "demo-tool")


def shipped_model(name: str) -> Path | None:
    """The directory of the shipped base model `name` ("demo", "demo-tool"), rebuilt into the cache
    when missing; None for any other name."""
    if name == "demo":
        from rlvr.demo.pretrain import ensure_base_model

        return ensure_base_model()
    if name == "demo-tool":
        from rlvr.demo.tool_pretrain import ensure_tool_model

        return ensure_tool_model()
    return None
