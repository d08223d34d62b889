"""The R1-Zero-style demo: a tiny arithmetic base model trained from scratch, then taught by GRPO.

- `rlvr.demo.corpus`: the synthetic pretraining text, the prompt template, the held-out rule.
- `rlvr.demo.pretrain`: trains the base model (`python -m rlvr.demo.pretrain`) and
  `ensure_base_model()` returns the shipped copy in `rlvr/data/tiny-arith/`.
"""
