"""Benchmark tool-calling episodes: the Docker warm pool against one `docker run` per call.

Every row plays the same episodes through the real loop (`rlvr.rollout.episodes.run_episodes`,
a `ToolRunner` with the ``python`` tool, 8 workers); only where the programs run differs:

- ``pool``: `rlvr.sandboxes.docker.DockerSandbox` (size = cores), as in training;
- ``docker run``: a fresh locked-down container per call (``docker run --rm -i`` with the pool's
  flags: no network, read-only root, tmpfs, memory/pid/CPU caps, no capabilities), what a setup
  without a warm pool does.

Two policies write the model turns:

1. ``scripted``: each episode asks for a product of two 4-digit numbers; the policy writes
   ``--calls`` turns, each a fenced python program, then an ``<answer>`` with the number it read in
   the last observation. Generation costs nothing here, so this row measures the tool path alone
   (an upper bound on episodes/s).
2. ``model``: the shipped demo model (1.1M parameters, `HFSampler`, sampled) writes every turn,
   and a bench environment runs each of its first ``--calls`` turns as a program. The model writes
   arithmetic prose, not Python, so most programs end in a SyntaxError, but each is a real program
   run in the sandbox, and generation costs what it costs. This row says what share of an episode
   batch's wall time the loop spends waiting on tools with a real (tiny) model generating.

Columns: episodes/s and tool calls/s over the batch's wall time; p50 of a call's latency; "loop
blocked on tools": the share of wall time the loop had no episode to generate for and waited on
tools (`EpisodeStats.blocked_s / wall_s`); "episode time on tools": the mean share of the batch's
wall time an episode spent waiting for its calls (`Trajectory.tool_wait_s / wall_s`). The loop
generates for whichever episodes are ready, so with slow tools it runs many small generation
calls instead of blocking: the first share stays low while the second shows the wait. "failed
calls": calls whose program failed (the model policy writes prose) or timed out. Nothing is
asserted. With ``--write-docs`` the table goes
into the "## Tool episodes" section of docs/benchmarks.md.

    .venv/bin/python bench/tool_episodes.py                      # ~1-2 min on 2 cores
    .venv/bin/python bench/tool_episodes.py --episodes 64 --calls 2 --write-docs
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rlvr.rollout.episodes import EpisodeStats, ToolEnvironment, run_episodes
from rlvr.rollout.trajectory import Done, Environment, ToolCalls
from rlvr.samplers.base import Completion, Group, SamplingParams
from rlvr.sandboxes.base import ExecResult, Job, run_jobs
from rlvr.tools.base import ToolCall
from rlvr.tools.builtin import PythonTool
from rlvr.tools.runner import ToolRunner

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
IMAGE = "rlvr-sandbox:py3"


class DockerRunSandbox:
    """One `docker run --rm -i` per program, with the warm pool's lockdown flags (a Sandbox)."""

    def __init__(self, image: str = IMAGE, size: int = 8):
        self.image, self.size = image, size
        self._pool = ThreadPoolExecutor(size)

    def run(self, code: str, *, stdin: Any = None, files: Mapping[str, Any] | None = None, timeout_s: float = 10.0,
            memory_mb: int = 256) -> ExecResult:
        name = f"rlvr-bench-{secrets.token_hex(6)}"
        argv = ["docker", "run", "--rm", "-i", "--name", name, "--network", "none", "--read-only",
                "--tmpfs", "/scratch:size=64m", "--tmpfs", "/tmp:size=64m", "--memory", f"{memory_mb + 128}m",
                "--memory-swap", f"{memory_mb + 128}m", "--pids-limit", "128", "--cpus", "1", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", "--user", "10000:10000", "--log-driver", "none",
                self.image, "python3", "-c", code]
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, input=b"", capture_output=True, timeout=timeout_s + 30)
        except subprocess.TimeoutExpired:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)  # only the one we named
            return ExecResult(None, 9, True, wall_s=time.monotonic() - t0)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        return ExecResult(p.returncode, stdout=out, stderr=err, stdout_bytes=len(p.stdout),
                          stderr_bytes=len(p.stderr), wall_s=time.monotonic() - t0)

    def run_many(self, jobs: Sequence[Job]) -> list[ExecResult]:
        return run_jobs(self._pool, self.run, jobs)

    def close(self) -> None:
        self._pool.shutdown()

    def __enter__(self) -> DockerRunSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Scripted:
    """A replay policy: ``--calls`` python turns, then the answer read from the last observation."""

    def __init__(self, tokenizer: Any, calls: int):
        self.tok, self.calls = tokenizer, calls

    def generate(self, prompts: Sequence[Sequence[int]], n: int, params: SamplingParams) -> list[Group]:
        out = []
        for ids in prompts:
            text = self.tok.decode(list(ids))
            done = text.count("```output")
            a, b = text.split("What is ")[1].split("?")[0].split(" * ")
            if done < self.calls:
                turn = f"Let me compute it.\n```python\nprint({a} * {b})\n```\n"
            else:
                turn = f"<answer>{text.rsplit('```output', 1)[1].split()[0]}</answer>"
            ids = self.tok.encode(turn, add_special_tokens=False)
            out.append(Group(list(ids), [Completion(turn, ids, [0.0] * len(ids), "stop")]))
        return out


class RunEveryTurn(Environment):
    """Runs each of the first `calls` model turns as a python program (the model bench)."""

    stop = ()

    def __init__(self, calls: int, max_tokens: int):
        self.calls, self.max_turns, self.max_tokens = calls, calls + 1, max_tokens

    def respond(self, trajectory, sample):
        turns = trajectory.model_turns
        if len(turns) > self.calls:
            return Done()
        return ToolCalls((ToolCall("python", {"code": turns[-1].text}, turns[-1].text),))

    def observe(self, calls, results, sample):
        return "".join(f"\n```output\n{r.output[:200]}```\n" for r in results)


def prompts(tok: Any, n: int) -> tuple[list[list[int]], list[dict]]:
    import random

    rng = random.Random(0)
    pairs = [(rng.randint(1000, 9999), rng.randint(1000, 9999)) for _ in range(n)]
    texts = [f"User: What is {a} * {b}?\nAssistant:" for a, b in pairs]
    return [tok.encode(t, add_special_tokens=False) for t in texts], [{"a": a, "b": b} for a, b in pairs]


def play(policy: str, where: str, sandbox: Any, args: argparse.Namespace, tok: Any, model: Any) -> dict[str, Any]:
    ids, samples = prompts(tok, args.episodes)
    if policy == "scripted":
        sampler, env = Scripted(tok, args.calls), ToolEnvironment(["python"], ["python_fence"],
                                                                  max_turns=args.calls + 1, max_tokens=1024)
        params = SamplingParams(max_new_tokens=64)
    else:
        from rlvr.samplers.hf import HFSampler

        sampler, env = HFSampler(model, tok, batch_size=64), RunEveryTurn(args.calls, max_tokens=512)
        params = SamplingParams(max_new_tokens=args.model_tokens, temperature=1.0)
    stats = EpisodeStats()
    with ToolRunner({"python": PythonTool(sandbox=sandbox)}, timeout_s=30, workers=8) as runner:
        trajs = run_episodes(sampler, env, runner, ids, samples, params, tok, seed=0, stats=stats)
        counts = runner.counts()
    lat = [r.wall_s * 1e3 for t in trajs for r in t.tool_results]
    right = sum(t.model_turns[-1].text == f"<answer>{s['a'] * s['b']}</answer>" for t, s in zip(trajs, samples))
    return {"policy": policy, "where": where, "episodes": len(trajs), "calls": int(counts["calls"]),
            "wall_s": stats.wall_s, "eps_per_s": len(trajs) / stats.wall_s,
            "calls_per_s": counts["calls"] / stats.wall_s, "p50_ms": statistics.median(lat) if lat else 0.0,
            "wait_share": stats.blocked_s / stats.wall_s,
            "episode_wait": statistics.mean(t.tool_wait_s for t in trajs) / stats.wall_s, "errors": int(counts["errors"] + counts["timeouts"]),
            "right": right}


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| policy | tools run in | episodes | tool calls | wall s | episodes/s | tool calls/s | p50 call ms "
             "| loop blocked on tools | episode time on tools | failed calls |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['where']} | {r['episodes']} | {r['calls']} | {r['wall_s']:.2f} | "
                     f"{r['eps_per_s']:.1f} | {r['calls_per_s']:.1f} | {r['p50_ms']:.0f} | "
                     f"{100 * r['wait_share']:.0f}% | {100 * r['episode_wait']:.0f}% | {r['errors']} |")
    return lines


def write_docs(lines: list[str], command: str) -> None:
    """Replace (or add, before "## GRPO vs TRL") the "## Tool episodes" section of docs/benchmarks.md."""
    import textwrap

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    note = textwrap.fill(
        f"Measured {when} on {os.cpu_count()} cores shared with other jobs (load average {load} at the end of "
        "the run, the bench's own containers included): compare rows within one run. Every row plays the same episodes through `run_episodes` and "
        "a `ToolRunner` (8 workers) with the `python` tool; only where programs run differs (the warm pool, "
        "one container per core, or a fresh locked-down `docker run --rm` per call). The scripted policy "
        "costs nothing to generate (the tool path alone); the model policy is the shipped demo model, whose "
        "prose mostly fails as a program (\"failed calls\") but runs all the same. \"Loop blocked on "
        "tools\": the share of wall time no episode was ready to generate; \"episode time on tools\": an "
        "episode's mean wait on its calls over the batch's wall time (the loop keeps generating for the "
        "ready episodes, so the first share stays low while the second shows the wait).", 100)
    body = "\n".join(["## Tool episodes", "", f"`{command}`", "", note, "", *lines]) + "\n"
    text = DOCS.read_text()
    head, sep, rest = text.partition("## Tool episodes\n")
    if sep:
        nxt = rest.find("\n## ")
        text = head + body + (rest[nxt + 1:] if nxt >= 0 else "")
    elif "\n## GRPO vs TRL\n" in text:
        a, b = text.split("\n## GRPO vs TRL\n", 1)
        text = a + "\n" + body + "\n## GRPO vs TRL\n" + b
    else:
        text = text.rstrip("\n") + "\n\n" + body
    DOCS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--calls", type=int, default=2, help="tool calls per episode")
    ap.add_argument("--model-tokens", type=int, default=24, help="tokens per model turn (model policy)")
    ap.add_argument("--policies", default="scripted,model")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.demo.pretrain import ensure_base_model
    from rlvr.sandboxes.docker import DockerSandbox

    torch.set_num_threads(1)
    path = ensure_base_model()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    rows = []
    with DockerSandbox(memory_mb=256) as pool, DockerRunSandbox() as per_call:
        pool.run("print(1)", timeout_s=10)  # warm: the image's first start is not part of a row
        per_call.run("print(1)", timeout_s=10)
        for policy in args.policies.split(","):
            for where, box in (("pool", pool), ("docker run", per_call)):
                rows.append(play(policy, where, box, args, tok, model))
                print(f"  {policy} / {where}: {rows[-1]['wall_s']:.1f} s", file=sys.stderr)
    lines = table(rows)
    print("\n".join(lines))
    for policy in dict.fromkeys(r["policy"] for r in rows):
        p = {r["where"]: r for r in rows if r["policy"] == policy}
        if len(p) == 2:
            pool, run = p["pool"], p["docker run"]
            right = f"; answers right {pool['right']}/{pool['episodes']}" if policy == "scripted" else ""
            print(f"{policy}: pool {pool['eps_per_s']:.1f} episodes/s vs docker run {run['eps_per_s']:.1f} "
                  f"({pool['eps_per_s'] / run['eps_per_s']:.1f}x); episode time on tools "
                  f"{100 * pool['episode_wait']:.0f}% vs {100 * run['episode_wait']:.0f}%{right}")
    if args.write_docs:
        write_docs(lines, ".venv/bin/python bench/tool_episodes.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
