"""rlvr.verifiers: reward functions behind one API.

`Sample`, `Score`, `register_verifier`, `get_verifier`, `combine` live in `base`. Built-in
verifiers (`math`, `format`, `code`, `reward_model`) are imported lazily by `get_verifier`.
"""

from rlvr.verifiers.base import (
    Combined,
    Sample,
    Score,
    Verifier,
    VerifierError,
    combine,
    deadline_enforced,
    get_verifier,
    list_verifiers,
    register_verifier,
)

__all__ = [
    "Combined",
    "Sample",
    "Score",
    "Verifier",
    "VerifierError",
    "combine",
    "deadline_enforced",
    "get_verifier",
    "list_verifiers",
    "register_verifier",
]
