"""Fixtures of the tool tests: one 2-slot Docker pool for the module's python-tool tests (Docker
tests carry the ``docker`` marker: a skip locally without an engine, a failure under CI=true)."""

from __future__ import annotations

import pytest

from tests.verifiers.conftest import make_box


@pytest.fixture(scope="module")
def docker_pool():
    box = make_box("docker")
    yield box
    box.close()


@pytest.fixture(scope="module")
def local_box():
    box = make_box("local")
    yield box
    box.close()
