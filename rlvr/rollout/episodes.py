"""The episode loop: model turns and environment turns, many episodes at once, tools run concurrently.

`run_episodes(sampler, env, runner, prompt_token_ids, samples, params, tokenizer)` plays one
episode per prompt (repeat a prompt G times for a group) and returns one `Trajectory` each:

1. every episode that is ready (not waiting on a tool) gets its next model turn; ready episodes
   are generated together in one sampler call. Each turn's cap is ``min(params.max_new_tokens,
   tokens left in the episode's budget)``: the call runs to the largest cap of its episodes and a
   turn longer than its own cap is cut to it (the tokens kept are distributed exactly as if
   generation had stopped there; one large batch beats a call per cap). A turn also stops at the
   sampler's stop strings plus the environment's (``env.stop``, e.g. ``</tool_call>``);
2. the environment reads the whole trajectory and answers `Done`, an `Observation`, or
   `ToolCalls`; calls go to the runner (``runner.submit(call) -> Future[ToolResult]``) and the
   episode waits while every other episode keeps generating. The loop blocks on tool futures
   only when no episode is ready (that time is `EpisodeStats.blocked_s`);
3. finished calls become observation text (``env.observe``), which is tokenized and appended at
   the token level: the context of the next turn is exactly prompt + every turn's tokens, never a
   re-tokenization of the history. Observation tokens carry loss mask 0 and logprob 0;
4. an episode ends when the environment says `Done` (``end="done"``), after ``env.max_turns``
   model turns (``"max_turns"``), when its budget of ``env.max_tokens`` tokens after the prompt
   is spent (``"max_tokens"``: a model turn cut at the cap, or an observation cut to fit, flagged
   ``Turn.truncated``), or when a model turn hits ``params.max_new_tokens`` (``"length"``).

The model's mistakes are data: a malformed call, an unknown tool, a crash, a hang or a flood of
output come back as an observation (the runner's `ToolResult`), never as an exception. An
exception in the environment's own code (a bug, not a mistake of the model) is raised, naming
the environment and the turn.

`ToolEnvironment` is the default environment: it parses each model turn with
`rlvr.tools.parse.parse_calls`; no call means the episode is done, calls are run (a malformed
call is not run: the runner answers it with the parse error, which the model reads next). `EpisodeSetup` bundles what
`rlvr.rollout.collect` needs to run episodes instead of single completions, and
`episode_metrics` summarises a batch of trajectories (tool calls, errors, turns, tokens, waits).

What it does not do: parse or run tools (`rlvr.tools`), score trajectories (the verifier reads
``env.verifier_text(trajectory)``, by default the model's text, in `rlvr.rollout.collect`), or
make sampling reproducible across runs when tools finish in a different order (which episodes
share a sampler call, and so its seed, depends on when their tools return).

Try it (any sampler and its tokenizer; tests/trainers/test_episodes.py runs the tiny model)::

    from rlvr.rollout.episodes import ToolEnvironment, run_episodes
    from rlvr.tools.runner import ToolRunner
    with ToolRunner(["calculator"]) as runner:
        trajs = run_episodes(sampler, ToolEnvironment(["calculator"], ["hermes"]), runner,
                             [prompt_ids] * 4, [sample] * 4, SamplingParams(max_new_tokens=64), tokenizer)
    trajs[0].turns, trajs[0].end, trajs[0].loss_mask
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from rlvr.rollout.trajectory import Done, Environment, Observation, ToolCalls, Trajectory, Turn
from rlvr.samplers.base import Completion, Group, SamplingParams, tokenize_prompts
from rlvr.tools.base import ToolCall, ToolResult

__all__ = ["EpisodeSetup", "EpisodeStats", "ToolEnvironment", "as_completion", "episode_groups", "episode_metrics",
           "run_episodes"]


@dataclass
class EpisodeStats:
    """What one `run_episodes` call did, beyond the trajectories."""

    episodes: int = 0
    generate_calls: int = 0  # sampler calls (one per round of ready episodes)
    blocked_s: float = 0.0  # seconds the loop waited on tools with no episode ready to generate
    wall_s: float = 0.0


@dataclass(frozen=True)
class EpisodeSetup:
    """What `collect` needs to run episodes: the environment, the tool runner (anything with
    ``submit(call) -> Future[ToolResult]``, e.g. `rlvr.tools.runner.ToolRunner`; None for an
    environment without tools) and the tokenizer that turns observations into tokens."""

    env: Environment
    runner: Any
    tokenizer: Any


@dataclass
class _Episode:
    sample: Any
    context: list[int]  # prompt + every turn's tokens: the next turn's prompt
    traj: Trajectory
    calls: list[ToolCall] = field(default_factory=list)
    futures: list[Future] = field(default_factory=list)
    submitted: float = 0.0
    done_at: list[float] = field(default_factory=list)  # when each future resolved

    @property
    def used(self) -> int:
        return len(self.context) - len(self.traj.prompt_token_ids)

    def add(self, turn: Turn) -> None:
        self.traj.turns.append(turn)
        self.context.extend(turn.token_ids)


def run_episodes(
    sampler: Any,
    env: Environment,
    runner: Any,
    prompt_token_ids: Sequence[Sequence[int]],
    samples: Sequence[Any],
    params: SamplingParams,
    tokenizer: Any,
    *,
    seed: int | None = None,
    stats: EpisodeStats | None = None,
) -> list[Trajectory]:
    """Play one episode per prompt (see the module docstring); trajectories in prompt order.

    params: per-turn sampling (``max_new_tokens`` is the per-turn limit, further capped by the
    budget). seed: sampler call k uses ``seed + k`` (None: fresh randomness). stats: filled in.
    """
    if len(prompt_token_ids) != len(samples):
        raise ValueError(f"run_episodes: {len(prompt_token_ids)} prompts but {len(samples)} samples")
    if env.max_turns < 1 or env.max_tokens < 1:
        raise ValueError(f"{type(env).__name__}: max_turns and max_tokens must be >= 1, "
                         f"got {env.max_turns} and {env.max_tokens}")
    start, stats = time.monotonic(), stats if stats is not None else EpisodeStats()
    eps = [_Episode(s, list(p), Trajectory(list(p))) for p, s in zip(prompt_token_ids, samples)]
    stop = tuple(dict.fromkeys((*params.stop, *env.stop)))
    while True:
        for ep in eps:
            if ep.futures and all(f.done() for f in ep.futures):
                _tool_results(ep, env, tokenizer)
        ready = [ep for ep in eps if ep.traj.end is None and not ep.futures]
        if ready:
            caps = [min(params.max_new_tokens, env.max_tokens - ep.used) for ep in ready]
            call_seed = None if seed is None else seed + stats.generate_calls
            turn_params = dataclasses.replace(params, max_new_tokens=max(caps), stop=stop, seed=call_seed)
            out = sampler.generate([list(ep.context) for ep in ready], n=1, params=turn_params)
            stats.generate_calls += 1
            for ep, cap, g in zip(ready, caps, out):
                _model_turn(ep, _capped(g.completions[0], cap, tokenizer), env, runner, tokenizer)
            continue
        waiting = [f for ep in eps for f in ep.futures]
        if not waiting:
            break
        t0 = time.monotonic()
        wait(waiting, return_when=FIRST_COMPLETED)
        stats.blocked_s += time.monotonic() - t0
    stats.episodes += len(eps)
    stats.wall_s += time.monotonic() - start
    return [ep.traj for ep in eps]


def _capped(comp: Completion, cap: int, tokenizer: Any) -> Completion:
    """`comp` cut to `cap` tokens (finish reason "length") when it is longer."""
    if len(comp.token_ids) <= cap:
        return comp
    ids = list(comp.token_ids[:cap])
    return Completion(tokenizer.decode(ids, skip_special_tokens=True), ids, list(comp.logprobs[:cap]), "length")


def _model_turn(ep: _Episode, comp: Completion, env: Environment, runner: Any, tokenizer: Any) -> None:
    """Append a model turn, then act on the environment's answer to it."""
    ep.add(Turn("model", comp.text, list(comp.token_ids), list(comp.logprobs), comp.finish_reason))
    if comp.finish_reason == "length":  # cut: by the budget, or by the per-turn limit
        ep.traj.end = "max_tokens" if ep.used >= env.max_tokens else "length"
        return
    try:
        answer = env.respond(ep.traj, ep.sample)
    except Exception as e:
        raise RuntimeError(f"{type(env).__name__}.respond raised after model turn {len(ep.traj.model_turns)}: "
                           f"{type(e).__name__}: {e}") from e
    if isinstance(answer, Done):
        ep.traj.end = "done"
    elif len(ep.traj.model_turns) >= env.max_turns:
        ep.traj.end = "max_turns"
    elif ep.used >= env.max_tokens:  # no room left for what the environment would answer
        ep.traj.end = "max_tokens"
    elif isinstance(answer, Observation):
        _observe(ep, answer.text, [], [], env, tokenizer)
    elif isinstance(answer, ToolCalls):
        ep.calls, ep.submitted, ep.done_at = list(answer.calls), time.monotonic(), []
        ep.futures = [runner.submit(c) if runner is not None else _resolved(c) for c in ep.calls]
        for f in ep.futures:
            f.add_done_callback(lambda _f, ep=ep: ep.done_at.append(time.monotonic()))
        if not ep.futures:
            _tool_results(ep, env, tokenizer)
    else:
        raise TypeError(f"{type(env).__name__}.respond returned {answer!r}: expected Done, Observation or ToolCalls")


def _tool_results(ep: _Episode, env: Environment, tokenizer: Any) -> None:
    """The episode's calls have finished: their results become its next observation."""
    results = [_result(f) for f in ep.futures]
    done = len(ep.done_at) == len(ep.futures)  # a done-callback may lag the future's state
    last = (max(ep.done_at, default=ep.submitted)) if done else time.monotonic()
    ep.traj.tool_wait_s += last - ep.submitted
    calls, ep.calls, ep.futures = ep.calls, [], []
    _observe(ep, env.observe(calls, results, ep.sample), calls, results, env, tokenizer)


def _resolved(call: ToolCall) -> Future:
    """The result of a call made where no tool runs (an environment without tools)."""
    f: Future = Future()
    text = f"error: {call.error}" if call.error else f"error: no tools are available here (called {call.name!r})"
    f.set_result(ToolResult(text, "error", info={"reason": "malformed" if call.error else "unknown_tool"}))
    return f


def _result(future: Future) -> ToolResult:
    """A runner's result; a future that raised anyway (a runner bug) is an error observation too."""
    err = future.exception()
    if err is None:
        return future.result()
    return ToolResult(f"tool runner error: {type(err).__name__}: {err}", "error", info={"exception": repr(err)})


def _observe(ep: _Episode, text: str, calls: list[ToolCall], results: list[ToolResult], env: Environment,
             tokenizer: Any) -> None:
    """Tokenize the observation and append it, cut to the episode's budget (then the episode ends)."""
    ids = list(tokenizer.encode(text, add_special_tokens=False)) if text else []
    room = env.max_tokens - ep.used
    cut = len(ids) > room
    if cut:
        ids = ids[:room]
        text = tokenizer.decode(ids)
    ep.add(Turn("env", text, ids, tool_calls=calls, tool_results=results, truncated=cut))
    if ep.used >= env.max_tokens:
        ep.traj.end = "max_tokens"


class ToolEnvironment(Environment):
    """The default environment: tool calls parsed from the model's turn, run, results shown.

    tools: the tools the episodes may call (names or specs for `rlvr.tools.runner.ToolRunner`).
    formats: call formats to parse (keys of `rlvr.tools.parse.STOPS`: "python_fence", "hermes").
    observation: a template for each result (``{output}``, ``{name}``, ``{status}``); None shows
    each result in its call's format (`rlvr.tools.parse.format_observation`: an ``output`` fence
    after a python block, ``<tool_response>`` tags after a ``<tool_call>``).
    around: a template for the whole observation (``{results}``). Chat models read tool results in
    a turn of their own, e.g. for ChatML
    ``"\n<|im_start|>user\n{results}<|im_end|>\n<|im_start|>assistant\n"`` (special tokens in
    the text become special tokens, as the chat template would write them).
    """

    def __init__(self, tools: Sequence[Any] = ("python",), formats: Sequence[str] = ("python_fence", "hermes"),
                 max_turns: int = 4, max_tokens: int = 512, observation: str | None = None,
                 around: str = "{results}"):
        from rlvr.tools.parse import STOPS, stops_for

        unknown = [f for f in formats if f not in STOPS]
        if unknown or not formats:
            raise ValueError(f"ToolEnvironment: unknown call format(s) {unknown or list(formats)}; "
                             f"known: {', '.join(STOPS)}")
        self.tools = tuple(tools)
        self.formats = tuple(formats)
        self.stop = stops_for(self.formats)
        self.max_turns, self.max_tokens = int(max_turns), int(max_tokens)
        self.observation, self.around = observation, around

    def respond(self, trajectory: Trajectory, sample: Any) -> Done | Observation | ToolCalls:
        from rlvr.tools.parse import parse_calls

        calls = parse_calls(trajectory.model_turns[-1].text, formats=self.formats)
        if not calls:
            return Done()
        return ToolCalls(tuple(calls))  # malformed ones are not run: the runner answers with the error

    def observe(self, calls: list[ToolCall], results: list[ToolResult], sample: Any) -> str:
        if self.observation is None:
            from rlvr.tools.parse import format_observation

            text = format_observation(calls, results)
        else:
            text = "".join(self.observation.format(output=r.output, name=c.name, status=r.status)
                           for c, r in zip(calls, results))
        return self.around.format(results=text)



def as_completion(traj: Trajectory) -> Completion:
    """A trajectory as a `Completion` of its whole text after the prompt: observation tokens in
    ``token_ids`` with logprob 0 (their loss mask is ``traj.loss_mask``); "length" when truncated."""
    return Completion(traj.text, traj.token_ids, traj.logprobs, "length" if traj.truncated else "stop")


def episode_metrics(trajs: Sequence[Trajectory], stats: EpisodeStats | None = None,
                    prefix: str = "") -> dict[str, float]:
    """Means per episode of tool calls, turns and tokens; error, timeout and truncation counts.

    >>> episode_metrics([Trajectory([1], [Turn("model", "x", [2, 3], [0.0, 0.0])], end="done")])["episode/turns"]
    1.0
    """
    n = max(len(trajs), 1)
    results = [r for t in trajs for r in t.tool_results]
    calls = [c for t in trajs for c in t.tool_calls]
    model = sum(len(u.token_ids) for t in trajs for u in t.model_turns)
    obs = sum(len(u.token_ids) for t in trajs for u in t.turns if u.role == "env")
    out = {
        "tools/calls_per_episode": len(calls) / n,
        "tools/errors": float(sum(r.status == "error" for r in results)),
        "tools/timeouts": float(sum(r.status == "timeout" for r in results)),
        "tools/malformed": float(sum(c.error is not None for c in calls)),
        "tools/unknown": float(sum(r.info.get("reason") == "unknown_tool" for r in results)),
        "tools/truncated": float(sum(r.truncated for r in results)),
        "tools/replaced": float(sum(r.replaced for r in results)),
        "tools/error_rate": sum(not r.ok for r in results) / max(len(results), 1),
        "tools/wait_s": sum(t.tool_wait_s for t in trajs) / n,
        "episode/turns": sum(len(t.model_turns) for t in trajs) / n,
        "episode/model_tokens": model / n,
        "episode/obs_tokens": obs / n,
        "episode/obs_frac": obs / max(model + obs, 1),
        "episode/truncated": float(sum(t.truncated for t in trajs)),
        "episode/max_turns": float(sum(t.end == "max_turns" for t in trajs)),
    }
    if stats is not None:
        out["tools/blocked_s"] = stats.blocked_s
    return {prefix + k: v for k, v in out.items()}


def episode_groups(sampler: Any, setup: EpisodeSetup, prompts: Sequence[Any], samples: Sequence[Any], n: int,
                   params: SamplingParams, stats: EpisodeStats | None = None) -> tuple[list[Group], list[list[Trajectory]]]:
    """n episodes per prompt, as the sampler's `Group`s (each completion a whole episode, see
    `as_completion`) and, per group, the trajectories behind them. Prompts are text or token ids."""
    ids, texts = tokenize_prompts(prompts, setup.tokenizer)
    trajs = run_episodes(sampler, setup.env, setup.runner, [p for p in ids for _ in range(n)],
                         [s for s in samples for _ in range(n)], params, setup.tokenizer, seed=params.seed,
                         stats=stats)
    per = [trajs[b * n:(b + 1) * n] for b in range(len(ids))]
    return [Group(p, [as_completion(t) for t in ts], text) for p, text, ts in zip(ids, texts, per)], per
