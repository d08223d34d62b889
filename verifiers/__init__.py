"""rlvr.verifiers: reward functions behind one API.

A verifier is any callable ``(completion, sample) -> Score``. `Sample`, `Score`,
`register_verifier`, `get_verifier`, `list_verifiers` and `combine` live in `base`. Built-in
verifiers (`math`, `format`, `length`, `code`, `reward_model`) are imported lazily by
`get_verifier`, and third-party packages add names through the ``rlvr.verifiers`` entry-point
group. Running verifiers over batches, with deadlines and worker processes, is `rlvr.scoring`'s
job; this package does no concurrency. Guide: docs/verifiers.md.

Try it::

    >>> from rlvr.verifiers import Sample, get_verifier
    >>> get_verifier("format")("<think>1+1</think><answer>2</answer>", Sample(answer="2")).passed
    True
"""

from rlvr.verifiers.base import (
    BatchVerifier,
    Combined,
    DeadlineAware,
    Sample,
    Score,
    Verifier,
    VerifierError,
    combine,
    get_verifier,
    list_verifiers,
    register_verifier,
)

__all__ = [
    "BatchVerifier",
    "Combined",
    "DeadlineAware",
    "Sample",
    "Score",
    "Verifier",
    "VerifierError",
    "combine",
    "get_verifier",
    "list_verifiers",
    "register_verifier",
]
