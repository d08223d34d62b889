"""The code examples of docs/tools.md run as written (the user tool and the custom environment)."""

from __future__ import annotations

import re
from pathlib import Path

from rlvr.plugins import load_object
from rlvr.rollout.trajectory import Done, Observation, Trajectory, Turn
from rlvr.verifiers import Sample

DOC = Path(__file__).resolve().parents[2] / "docs" / "tools.md"


def _block(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    return next(b for b in blocks if b.startswith(first_line))


def test_user_tool_is_ten_lines_at_most():
    assert len(_block("# my_tools.py").strip().splitlines()) <= 10


def test_custom_environment_example(tmp_path):
    (tmp_path / "my_env.py").write_text(_block("# my_env.py"))
    env = load_object(f"{tmp_path}/my_env.py:OneRetry")()
    sample = Sample(prompt="What is 6 * 7?", answer=42)
    traj = Trajectory([1], [Turn("model", "It is 41.", [2], [0.0])])
    again = env.respond(traj, sample)
    assert isinstance(again, Observation) and "not right" in again.text
    traj.turns += [Turn("env", again.text, [3]), Turn("model", "It is 42.", [4], [0.0])]
    assert isinstance(env.respond(traj, sample), Done)
    assert isinstance(env.respond(Trajectory([1], [Turn("model", "42", [2], [0.0])]), sample), Done)
