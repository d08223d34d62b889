"""Shared test policy.

Tests marked `docker` or `vllm` need an engine this machine may lack. Locally they skip with the
reason; under CI=true a missing engine is a failure, never a skip (DEVELOPERS.md).
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, why: str) -> None:
    """Skip locally, fail in CI, when a required engine or package is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {why}: this test must run in CI", pytrace=False)
    pytest.skip(why)
