"""Building blocks of a training run: the policy, the reference, the sampler, the optimizer, evaluation.

`rlvr.trainers.grpo` reads like a recipe because the set-up lives here:
- `model_path(cfg, run_dir)`: "demo" -> the shipped demo base model, "tiny" -> a random tiny
  Qwen2 built once under the run directory, anything else as given.
- `load_policy`, `load_reference`: transformers models (LoRA through peft when asked; gradient
  checkpointing); the reference is loaded only when the KL weight is non-zero.
- `build_sampler`: HFSampler (shares the policy's weights), VLLMSampler or VLLMServerSampler.
- `build_optimizer`: AdamW + a warmup schedule from transformers.
- `build_episodes`: the multi-turn environment of the ``env:`` section and the tool runner the
  episodes share (`rlvr.rollout.episodes.EpisodeSetup`), built by `rlvr.rollout.environments`
  (which ``rlvr eval`` uses too); a critic preset is refused here.
- `task_verifier`, `data_order`: the task's weighted verifier (with the config's overrides) and
  the seeded prompt order. (Held-out evaluation is `rlvr.rollout.evaluate`.)

What it does not do: the loop itself, or any loss math.

Try it::

    >>> data_order(5, seed=0, cursor=7, count=3)
    [2, 4, 1]
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import torch

from rlvr.rollout import environments
from rlvr.rollout.environments import build_environment
from rlvr.verifiers.base import BatchVerifier, VerifierError, batched_components, combine, resolve_verifier

__all__ = ["build_environment", "build_episodes", "build_optimizer", "build_sampler", "data_order", "load_policy",
           "load_reference",
           "model_path", "scoring_workers", "task_verifier"]

log = logging.getLogger("rlvr.train")


def model_path(cfg: Any, run_dir: Path, is_main: bool = True) -> Path:
    """The directory of the policy's starting weights (building the demo/tiny model when needed)."""
    if cfg.model.path in ("demo", "demo-tool"):  # the shipped base models (rlvr.demo)
        from rlvr.demo import shipped_model

        return shipped_model(cfg.model.path)
    if cfg.model.path == "tiny":
        from rlvr.tiny import build_tiny_model

        out = run_dir / "tiny-model"
        if is_main and not (out / "config.json").exists():
            build_tiny_model(out, seed=cfg.seed, **cfg.model.tiny_shape)
        return out
    return Path(cfg.model.path)


def load_policy(path: Path, cfg: Any) -> tuple[Any, Any]:
    """(model, tokenizer) in fp32 for training; LoRA and gradient checkpointing as configured."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    model = apply_lora(model, cfg, "CAUSAL_LM")
    model.train()
    return model, tokenizer


def autocast(cfg: Any, model: Any) -> Any:
    """The forward's precision context for ``model.dtype``: bf16 autocast for "bfloat16" (CPU too) and
    for "auto" on a CUDA device with bf16; otherwise fp32 (a no-op context). Weights stay fp32."""
    import contextlib

    device = next(model.parameters()).device
    dtype = cfg.model.dtype
    if dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def disable_dropout(model: Any) -> Any:
    """Set every dropout probability to 0 (TRL's ``disable_dropout`` for DPO and reward models): a
    comparison against a reference, or a value read twice, must not jitter between passes. Besides
    ``nn.Dropout`` modules this zeroes the float ``attention_dropout`` that transformers attention
    layers (Qwen2, Llama, ...) pass to the attention kernel in training mode."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
    return model


def apply_lora(model: Any, cfg: Any, task_type: str) -> Any:
    """`model` wrapped in peft LoRA adapters when ``model.lora.enabled`` (else `model` itself).
    task_type SEQ_CLS (reward models) also trains and saves the new ``score`` head in full."""
    if not cfg.model.lora.enabled:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise ImportError("model.lora.enabled needs peft: pip install 'rlvr[peft]'") from e
    targets = cfg.model.lora.target_modules
    lora = LoraConfig(r=cfg.model.lora.r, lora_alpha=cfg.model.lora.alpha, lora_dropout=cfg.model.lora.dropout,
                      target_modules=targets[0] if targets == ["all-linear"] else targets, task_type=task_type)
    return get_peft_model(model, lora)


def load_adapter(model: Any, directory: Path) -> None:
    """Load a LoRA adapter saved by `save_pretrained` (a checkpoint's model/) into a peft model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model, load_file(directory / "adapter_model.safetensors"))
    if getattr(result, "unexpected_keys", None):
        raise RuntimeError(f"{directory}: adapter does not fit the model: {result.unexpected_keys[:5]}")


def load_reference(path: Path) -> Any:
    """A frozen copy of the starting policy (only built when the KL weight is non-zero)."""
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ref.eval().requires_grad_(False)
    return ref


def build_sampler(cfg: Any, model: Any, tokenizer: Any, path: Path, episodes: bool = False) -> Any:
    """The configured generation backend; HF shares `model`, vLLM gets weights pushed each step.
    episodes: multi-turn episodes will run, so vLLM reuses each turn's prefix (prefix caching on,
    unless ``rollout.vllm.engine_kwargs`` says otherwise)."""
    r = cfg.rollout
    if r.backend == "hf":
        from rlvr.samplers import HFSampler

        return HFSampler(model, tokenizer, batch_size=r.batch_size)
    if r.backend == "vllm":
        from rlvr.samplers import VLLMSampler

        kwargs = dict(r.vllm)
        if episodes:
            kwargs["engine_kwargs"] = {"enable_prefix_caching": True, **(kwargs.get("engine_kwargs") or {})}
        return VLLMSampler(str(path), seed=cfg.seed, **kwargs)
    from rlvr.samplers import VLLMServerSampler

    return VLLMServerSampler(r.server_url)


def build_episodes(cfg: Any, task: Any, tokenizer: Any) -> Any:
    """The run's `rlvr.rollout.episodes.EpisodeSetup` (`rlvr.rollout.environments.build_episodes`
    on ``cfg.env``), or None for single-turn completions; a critic preset with episodes is
    refused. Close it (``setup.close()``) when the run ends."""
    from rlvr.trainers.config import EPISODES_WITH_CRITIC

    env = build_environment(cfg.env, task)
    if env is None:
        return None
    if cfg.algo.needs_critic:
        raise ValueError(EPISODES_WITH_CRITIC)
    return environments.build_episodes(cfg.env, task, tokenizer, env=env)



def build_optimizer(cfg: Any, model: Any, total_updates: int, lr: float | None = None) -> tuple[Any, Any]:
    """AdamW over the trainable parameters and a transformers LR schedule with linear warmup
    (`lr` overrides ``optim.lr``, e.g. for PPO's critic)."""
    from transformers import get_scheduler

    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=o.lr if lr is None else lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    name = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[o.schedule]
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=o.warmup_steps, num_training_steps=total_updates)
    return optimizer, scheduler


def task_verifier(task: Any, tcfg: Any) -> Any:
    """The task's weighted verifier, with the config's weights and options laid over it."""
    weights = dict(tcfg.verifiers) if tcfg.verifiers is not None else dict(task.verifiers)
    options = {k: dict(v) for k, v in task.verifier_options.items()}
    for k, v in tcfg.verifier_options.items():
        options[k] = {**options.get(k, {}), **v}
    primary = tcfg.primary if tcfg.primary is not None else max(weights, key=lambda k: weights[k])
    if primary not in weights:
        raise VerifierError(f"task.primary={primary!r} is not one of the verifiers {sorted(weights)}")
    for k in weights:  # fail here, with the option named, rather than in every scoring worker
        try:
            built = resolve_verifier((k, options.get(k, {})))
        except (TypeError, ValueError) as e:
            raise VerifierError(f"task.verifier_options.{k}: {e}") from None
        if k == primary and isinstance(built, BatchVerifier) and getattr(built, "threshold", 0) is None:
            log.warning("task.primary is %r, a learned reward without a threshold: it passes nothing, so accuracy "
                        "will read 0; set task.primary to a rule-based verifier (e.g. math at weight 0)", k)
    return combine(weights, {k: (k, options.get(k, {})) for k in weights}, primary=primary)


def scoring_workers(verifier: Any, workers: int) -> int:
    """0 (score in the trainer's process) when a component is batched, e.g. a reward model: it then
    runs once per batch on the trainer's device instead of once per completion in every worker.
    Rule-based components keep their own deadlines there (math forks sympy, code runs sandboxed)."""
    batched = sorted(type(v).__name__ for v in batched_components(resolve_verifier(verifier)))
    if workers and batched:
        log.info("scoring in the trainer's process (scoring.workers=%d ignored): %s scores whole batches", workers, ", ".join(batched))
        return 0
    return workers


def data_order(n: int, seed: int, cursor: int, count: int) -> list[int]:
    """Indices cursor .. cursor+count-1 of an endless stream of seeded permutations of range(n)."""
    out: list[int] = []
    perms: dict[int, list[int]] = {}
    for c in range(cursor, cursor + count):
        epoch = c // n
        if epoch not in perms:
            perm = list(range(n))
            random.Random(f"{seed}:{epoch}").shuffle(perm)
            perms[epoch] = perm
        out.append(perms[epoch][c % n])
    return out
