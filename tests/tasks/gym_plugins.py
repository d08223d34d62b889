"""A custom reasoning-gym generator for the tests: `rlvr_test_echo`, registered the way a user
registers their own (`reasoning_gym.register_dataset`), imported through the task's `modules:`.

Its question asks to echo a number; `score_answer` gives 1.0 for that number, 0.5 for its
negation, 0.0 otherwise, and on purpose hangs on the answer "hang" and raises on "boom", so the
tests can watch rlvr's scoring turn a hung or crashing `score_answer` into failure data.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from reasoning_gym.dataset import ProceduralDataset
from reasoning_gym.factory import register_dataset


@dataclass
class EchoConfig:
    seed: int | None = None
    size: int = 10

    def validate(self) -> None:
        assert self.size > 0, "size must be positive"


class EchoDataset(ProceduralDataset):
    def __init__(self, config: EchoConfig):
        super().__init__(config=config, seed=config.seed, size=config.size)

    def __getitem__(self, idx: int) -> dict:
        n = random.Random(self.seed + idx).randint(10, 99)
        return {"question": f"Echo {n}.", "answer": str(n), "metadata": {"n": n}}

    def score_answer(self, answer: str | None, entry: dict) -> float:
        if answer == "hang":
            time.sleep(600)
        if answer == "boom":
            raise RuntimeError("score_answer exploded")
        if answer == entry["answer"]:
            return 1.0
        return 0.5 if answer == f"-{entry['answer']}" else 0.0


register_dataset("rlvr_test_echo", EchoDataset, EchoConfig)
