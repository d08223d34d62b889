"""rlvr: reinforcement learning from verifiable rewards for reasoning language models.

``rlvr.GRPOTrainer`` (the Python trainer API, `rlvr.api`) is imported on first use, so
``import rlvr`` stays light (no torch).
"""

from typing import Any

__version__ = "0.1.0.dev0"

__all__ = ["GRPOTrainer", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "GRPOTrainer":
        from rlvr.api import GRPOTrainer

        return GRPOTrainer
    raise AttributeError(f"module 'rlvr' has no attribute {name!r}")
