"""Trainers: each a loop that reads like a recipe, with no tensor math of its own.

- `rlvr.trainers.grpo`: the GRPO family behind ``rlvr train`` (presets from `rlvr.presets`);
  its config tree is `rlvr.trainers.config.TrainConfig`, its set-up helpers `rlvr.trainers.setup`,
  the run's parts (built once), prompt stream and async producer `rlvr.trainers.parts`.
- `rlvr.trainers.sft`, `rlvr.trainers.dpo`, `rlvr.trainers.reward`: the other pipelines.

Nothing is imported here, so ``import rlvr.trainers`` stays cheap. Guide: docs/training.md.
"""
