"""Fixtures for the Docker sandbox tests: warm pools shared by the tests that can share them.

`docker_sandbox` (session, size 2) serves tests that only look at results. `solo_sandbox`
(module, size 1) serves tests that need two jobs to land in the same container. Both need a
running engine and the image: locally they skip with the reason, under CI=true they fail
(`tests.conftest.require`). Build the image with `rlvr sandbox build` (or scripts/setup_docker.sh).
"""

from __future__ import annotations

import pytest

from tests.conftest import require

IMAGE = "rlvr-sandbox:py3"


def docker_problem() -> str | None:
    """None when an engine answers and has the image; otherwise what is missing."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means "no engine"
        return f"no Docker engine ({type(e).__name__}: {e}); run scripts/setup_docker.sh"
    try:
        client.images.get(IMAGE)
    except Exception:  # noqa: BLE001
        return f"image {IMAGE} missing; run `rlvr sandbox build`"
    return None


@pytest.fixture(scope="session")
def docker_ready() -> None:
    problem = docker_problem()
    require(problem is None, problem or "")


@pytest.fixture(scope="session")
def docker_sandbox(docker_ready):
    from rlvr.sandboxes.docker import DockerSandbox

    with DockerSandbox(size=2, memory_mb=256) as sb:
        yield sb


@pytest.fixture(scope="module")
def solo_sandbox(docker_ready):
    from rlvr.sandboxes.docker import DockerSandbox

    with DockerSandbox(size=1, memory_mb=256) as sb:
        yield sb
