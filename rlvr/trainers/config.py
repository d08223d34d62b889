"""`TrainConfig`: the one dataclass tree behind ``rlvr train`` (GRPO-family trainers).

Every field has a comment saying what it does. YAML files, dotted overrides and the ``preset:``
key are handled by `rlvr.config.load_config`; `load_train_config` wires them together::

    rlvr train run.yaml preset=dapo algo.clip_high=0.3 rollout.group_size=16

``preset: NAME`` lays `rlvr.presets.get_preset(NAME)` under the ``algo:`` section, so any algorithm
field can still be overridden. With no preset the algorithm is GRPO's preset.

What this module does not do: run anything (see `rlvr.trainers.grpo`), or define the algorithms
(see `rlvr.presets`).

Try it::

    >>> cfg = load_train_config(None, ["preset=dapo", "steps=3"])
    >>> cfg.algo.clip_high, cfg.steps
    (0.28, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlvr.config import load_config
from rlvr.curriculum import CurriculumConfig
from rlvr.presets import AlgoConfig, get_preset, preset_tree

__all__ = [
    "CheckpointConfig",
    "CriticConfig",
    "EnvConfig",
    "LoggingConfig",
    "LoraConfig",
    "ModelConfig",
    "OptimConfig",
    "RolloutConfig",
    "ScoringConfig",
    "TaskConfig",
    "TrainConfig",
    "load_train_config",
]


@dataclass
class LoraConfig:
    # Train LoRA adapters (peft) instead of every weight. Needs `pip install peft`.
    enabled: bool = False
    # Adapter rank, scaling alpha and dropout.
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    # Module names to adapt ("all-linear" = every linear layer except the output head).
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])


@dataclass
class ModelConfig:
    # A transformers model directory or hub name; "demo" = the shipped tiny arithmetic base model
    # (rlvr.demo.pretrain.ensure_base_model), "demo-tool" = the tool demo's (rlvr.demo.tool_pretrain);
    # "tiny" = a random-init tiny Qwen2 built under the run directory (tests, smoke runs).
    path: str = "demo"
    # Shape overrides for path=tiny (rlvr.tiny.DEFAULT_SHAPE keys, e.g. hidden_size: 64).
    tiny_shape: dict[str, Any] = field(default_factory=dict)
    # Training precision: "auto" = bf16 autocast where the hardware has it (CUDA with bf16), else fp32.
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    # Recompute activations in the backward pass to save memory (slower).
    gradient_checkpointing: bool = False
    # LoRA through peft (off by default).
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class TaskConfig:
    # A task name from rlvr.tasks (arithmetic, gsm8k, math, countdown, code, dataset).
    name: str = "arithmetic"
    # Options passed to get_task (e.g. level, source, columns, template).
    options: dict[str, Any] = field(default_factory=lambda: {"level": 1})
    # Verifier weights replacing the task's own (component -> weight; weight 0 = log only). None = the task's.
    verifiers: dict[str, float] | None = None
    # Options per verifier component (component -> options for get_verifier).
    verifier_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The component whose `passed` is the accuracy (None = the largest weight). With a learned
    # reward, `{reward_model: 1.0, math: 0.0}` and `primary: math` train on the reward model while
    # accuracy and held-out accuracy stay the rule-based verifier's.
    primary: str | None = None
    # The held-out split used for evaluation, and how many of its problems to evaluate.
    eval_split: str = "test"
    eval_limit: int = 100


@dataclass
class RolloutConfig:
    # Generation backend: "hf" (transformers generate, shares the trainer's weights), "vllm"
    # (colocated engine, weights pushed and checked each step) or "vllm_server" (rlvr serve).
    backend: Literal["hf", "vllm", "vllm_server"] = "hf"
    # URL of the `rlvr serve` server for backend=vllm_server.
    server_url: str = "http://127.0.0.1:8000"
    # Extra keyword arguments for VLLMSampler (e.g. kv_cache_bytes, dtype).
    vllm: dict[str, Any] = field(default_factory=dict)
    # Prompts per step (B, summed over all processes) and completions per prompt (G).
    prompts_per_step: int = 16
    group_size: int = 8
    # Generation limit and sampling. Stop strings stay in the text the verifier sees.
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: list[str] = field(default_factory=list)
    # Generate in this many chunks; each chunk is scored while the next one generates.
    chunks: int = 2
    # Sequences per transformers generate call (backend=hf).
    batch_size: int = 128
    # Async off-policy training (backend vllm or vllm_server): generate the next batches while the
    # trainer trains, from weights at most this many train steps old (0 = synchronous). See
    # algo.correction for the importance correction of the stale samples.
    max_staleness: int = 0
    # Longest wait, in seconds, for the producer's next batch (a dead engine is reported at once).
    async_wait_s: float = 1800.0
    # Run generation in the producer thread: None = when max_staleness > 0; true also at 0 (the
    # same numbers as synchronous training, for checking); false never.
    async_producer: bool | None = None


@dataclass
class EnvConfig:
    # Multi-turn episodes (docs/tools.md): the model's turns alternate with tool results or another
    # environment's observations until a final answer, the turn limit or the token budget.
    # Observation tokens are in the sequence but out of the loss. Off unless `tools` or
    # `environment` is set, or the task brings its own environment (Task.environment()).
    # The environment: None = the task's own, else (with tools) the built-in ToolEnvironment; or
    # your class as "path/to/file.py:Class" / "package.module:Class", built with `options`
    # (ToolEnvironment takes `observation` and `around`, templates for what the model reads).
    environment: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # Tools the model may call: built-ins (python, calculator), @register_tool names, or
    # "path/to/file.py:function" / "module:function".
    tools: list[str] = field(default_factory=list)
    # Call formats read from model turns: python_fence (```python blocks run by the python tool)
    # and hermes (<tool_call>{"name": ..., "arguments": {...}}</tool_call>). None = from the tools:
    # python_fence when `python` is one of them, hermes when any other tool is.
    formats: list[str] | None = None
    # Model turns per episode, and the episode's budget of tokens after the prompt (model and
    # observation tokens together; rollout.max_new_tokens caps each model turn). None = the
    # environment's own (ToolEnvironment: 4 turns, 512 tokens).
    max_turns: int | None = None
    max_tokens: int | None = None
    # Per-call deadline in seconds, the cap on a result's characters, concurrent calls, and where
    # the python tool runs: "auto" (Docker warm pool when Docker runs, else LocalSandbox, loudly),
    # "docker" or "local".
    timeout_s: float = 10.0
    max_output_chars: int = 2000
    workers: int = 8
    sandbox: Literal["auto", "docker", "local"] = "auto"

    @property
    def enabled(self) -> bool:
        return bool(self.tools) or self.environment is not None

    def __post_init__(self) -> None:  # one message per bad key, so the error points at its line
        bad = [f"{k} must be >= {low}, got {v}" for k, v, low in (
            ("max_turns", self.max_turns, 1), ("max_tokens", self.max_tokens, 1), ("workers", self.workers, 1),
            ("max_output_chars", self.max_output_chars, 100)) if v is not None and v < low]
        if self.timeout_s <= 0:
            bad.append(f"timeout_s must be > 0, got {self.timeout_s}")
        if bad:
            raise ValueError("; ".join(bad))


@dataclass
class OptimConfig:
    # AdamW learning rate, weight decay and betas.
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    # LR schedule after `warmup_steps` linear warmup (counted in optimizer steps).
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    # Gradient-norm clipping (None = off).
    max_grad_norm: float | None = 1.0
    # Sequences per forward/backward pass; a minibatch larger than this accumulates gradients.
    micro_batch_size: int = 64


@dataclass
class ScoringConfig:
    # Verifier worker processes (0 = score in the training process, no deadline enforcement). A
    # batched component (reward_model) always scores in the training process, on its device.
    workers: int = 1
    # Per-item deadline in seconds (None = the verifier's own timeout + 0.5 s).
    timeout_s: float | None = None


@dataclass
class LoggingConfig:
    # Where metrics.jsonl, rollouts.jsonl, alarms.jsonl, tb/, checkpoints/, final/ and config.yaml
    # go. None = runs/<the config file's name> (runs/train without a file).
    run_dir: str | None = None
    # Live progress bar: "auto" (tqdm when attached to a terminal or not), "tqdm", or "none".
    progress: Literal["auto", "tqdm", "none"] = "auto"
    # Mirror metrics to TensorBoard; W&B project name (None = off; needs `pip install wandb`).
    tensorboard: bool = True
    wandb_project: str | None = None
    # Save every rollout (prompt, completion, rewards per component, verifier info) to rollouts.jsonl.
    rollouts: bool = True
    # Greedy held-out evaluation every N steps (0 = never); also before the first step and at the end.
    eval_every: int = 25


@dataclass
class CheckpointConfig:
    # Save a checkpoint every N steps (0 = only at the end).
    every: int = 50
    # Keep this many checkpoints (0 = all).
    keep_last: int = 2


@dataclass
class CriticConfig:
    # PPO only (presets with advantage=gae). The value model's starting weights: None = the policy's
    # starting weights with a fresh scalar head; or a model directory (e.g. a reward model from
    # `rlvr rm`, as TRL initialises its value model).
    path: str | None = None
    # The critic's own AdamW learning rate (None = optim.lr); its schedule follows optim.
    lr: float | None = None


@dataclass
class TrainConfig:
    # Seeds the data order, sampling and initialisation; a resumed run continues the same streams.
    seed: int = 0
    # Training steps (one batch of rollouts each).
    steps: int = 100
    # Stop early after this many minutes of training (None = no limit); a checkpoint is saved.
    max_minutes: float | None = None
    # Algorithm preset name (grpo, dr_grpo, dapo, rloo, reinforce_pp, gspo, ppo); its fields fill `algo`.
    preset: str = "grpo"
    # Every algorithmic choice (rlvr.presets.AlgoConfig); `rlvr presets show NAME` prints one.
    algo: AlgoConfig = field(default_factory=lambda: get_preset("grpo"))
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    # Curriculum prompt sampler (rlvr.curriculum): per-prompt pass rates, retire prompts solved or
    # failed k times in a row, draw from a difficulty band. Off by default.
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    # Multi-turn episodes with tools or a custom environment (off by default).
    env: EnvConfig = field(default_factory=EnvConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.rollout.group_size < (1 if self.algo.needs_critic else 2):
            problems.append(f"rollout.group_size must be >= 2 (group advantages; 1 only with a critic), got {self.rollout.group_size}")
        if self.rollout.prompts_per_step < 1 or self.rollout.chunks < 1:
            problems.append("rollout.prompts_per_step and rollout.chunks must be >= 1")
        if self.rollout.max_staleness < 0 or self.rollout.async_wait_s <= 0:
            problems.append(f"rollout.max_staleness must be >= 0 and rollout.async_wait_s > 0, got "
                            f"{self.rollout.max_staleness} and {self.rollout.async_wait_s}")
        if self.optim.micro_batch_size < 1:
            problems.append("optim.micro_batch_size must be >= 1")
        if self.env.enabled and self.algo.needs_critic:
            problems.append(EPISODES_WITH_CRITIC)
        if problems:
            raise ValueError("; ".join(problems))


EPISODES_WITH_CRITIC = (
    "env: multi-turn episodes do not work with a critic preset (advantage=gae, e.g. ppo): GAE would run "
    "across the observation tokens as if they were the policy's steps. Use a GRPO-family preset "
    "(grpo, dr_grpo, dapo, rloo, reinforce_pp, gspo): their advantages are per episode")


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a `TrainConfig` from YAML + dotted overrides, with ``preset:`` laid under ``algo:``.
    An unset ``logging.run_dir`` becomes ``runs/<config file name>`` (``runs/train`` without one)."""
    cfg = load_config(TrainConfig, path, overrides, presets=preset_tree, preset_key="preset")
    if cfg.logging.run_dir is None:
        cfg.logging.run_dir = f"runs/{Path(path).stem if path is not None else 'train'}"
    return cfg
