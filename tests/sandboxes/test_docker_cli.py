"""`rlvr sandbox build` and `rlvr sandbox doctor` end to end through the CLI (needs Docker)."""

from __future__ import annotations

import pytest

from rlvr.cli import main

pytestmark = pytest.mark.docker


def test_build_is_idempotent(docker_ready, capsys):
    assert main(["sandbox", "build"]) == 0
    assert "rlvr-sandbox:py3: already built" in capsys.readouterr().out


def test_doctor_passes_every_check(docker_ready, capsys):
    assert main(["sandbox", "doctor", "--jobs", "20", "--size", "1"]) == 0
    out = capsys.readouterr().out
    for check in ("engine", "image", "isolation", "contain: fork bomb", "contain: kill PID 1", "throughput"):
        assert any(line.startswith(check) and " ok " in line for line in out.splitlines()), check
    assert "all checks passed" in out
