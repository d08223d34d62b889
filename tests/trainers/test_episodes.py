"""The episode loop (`rlvr.rollout.episodes`) on the real HFSampler and tiny random model.

- token-level exactness: every model turn's sampler logprobs equal the policy's teacher-forced
  logprobs over the whole episode (prompt + turns, observations included), so the next turn's
  context is exactly the tokens before it, never a re-tokenization;
- an episode waiting on a tool never blocks the others: a tool that waits for a later turn of
  another episode still finishes (it would deadlock until its deadline otherwise);
- the token budget: cut model turns and cut observations end the episode as "max_tokens",
  flagged and counted; the turn limit ends it as "max_turns";
- `collect`/`evaluate` with an `EpisodeSetup`: completions are whole episodes, observation tokens
  carry loss mask 0 and logprob 0, the verifier reads the model's text;
- observation tokens are out of the gradient: changing their ids, logprobs and per-token
  advantages leaves the gradient bitwise unchanged (and the same change does move it without
  the mask).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from rlvr.rollout import PromptBatch, RolloutPlan, collect, evaluate
from rlvr.rollout.episodes import EpisodeSetup, EpisodeStats, episode_metrics, run_episodes
from rlvr.rollout.trajectory import Done, Environment, Observation, ToolCalls
from rlvr.samplers import SamplingParams
from rlvr.scoring import Scorer
from rlvr.tools.base import ToolCall, ToolResult
from rlvr.tools.runner import ToolRunner
from rlvr.verifiers import Sample, Score

# A random model rarely stops on its own: end its turns at any vowel or space instead.
STOPS = tuple("aeiou ")


class Count:
    """Counts the characters of the text it is given."""

    name, description, parameters = "count", "count characters", {"type": "object"}

    def __call__(self, arguments: dict, *, timeout_s: float) -> ToolResult:
        return ToolResult(f" [{len(arguments['text'])} chars] ")


class Gate:
    """Episode 0's call waits until an episode's third turn opens the gate (a file)."""

    name, description, parameters = "gate", "wait or open", {"type": "object"}

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, arguments: dict, *, timeout_s: float) -> ToolResult:
        if arguments["open"]:
            self.path.touch()
            return ToolResult(" opened ")
        if not arguments["wait"]:
            return ToolResult(" ok ")
        deadline = time.monotonic() + timeout_s
        while not self.path.exists():
            if time.monotonic() > deadline:
                return ToolResult("gate timed out", "timeout")
            time.sleep(0.01)
        return ToolResult(" passed ")


class CallEveryTurn(Environment):
    """Every model turn calls `tool` on its text; the episode ends at the turn limit."""

    def __init__(self, tool: str = "count", max_turns: int = 3, max_tokens: int = 200):
        self.tool, self.max_turns, self.max_tokens = tool, max_turns, max_tokens

    def respond(self, trajectory, sample):
        turn = len(trajectory.model_turns)
        args = {"text": trajectory.model_turns[-1].text, "open": turn == 3 and sample.metadata["opens"]}
        return ToolCalls((ToolCall(self.tool, args),))


class SayOnce(Environment):
    """One fixed observation after the first turn, then done."""

    def __init__(self, text: str, max_tokens: int = 200):
        self.text, self.max_tokens, self.max_turns = text, max_tokens, 4

    def respond(self, trajectory, sample):
        return Observation(self.text) if len(trajectory.model_turns) == 1 else Done()


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.samplers import HFSampler

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, tok, HFSampler(model, tok)


@pytest.fixture
def runner(tmp_path):
    with ToolRunner({"count": Count(), "gate": Gate(tmp_path / "gate"), "calculator": "calculator"},
                    timeout_s=30.0) as r:
        yield r


def _teacher_logprobs(model, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + tokens])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1]  # (T, V)
    return torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(tokens)[:, None])[:, 0]


def test_turns_are_appended_at_the_token_level(policy, runner):
    model, tok, sampler = policy
    prompt = tok("Q: 12 + 30 = ?")["input_ids"]
    samples = [Sample(prompt="q", metadata={"opens": False})] * 3
    trajs = run_episodes(sampler, CallEveryTurn(), runner, [prompt] * 3, samples,
                         SamplingParams(max_new_tokens=6, stop=STOPS), tok, seed=0)
    for t in trajs:
        assert t.end in ("max_turns", "length")
    assert any(t.end == "max_turns" for t in trajs)
    for t in trajs:
        assert t.token_ids == [i for u in t.turns for i in u.token_ids]
        assert t.loss_mask == [float(u.role == "model") for u in t.turns for _ in u.token_ids]
        if len(t.turns) < 2:
            continue
        env_turn = t.turns[1]
        assert env_turn.token_ids == tok.encode(env_turn.text, add_special_tokens=False)
        assert env_turn.tool_results[0].output == f" [{len(t.turns[0].text)} chars] "
        # the sampler's logprobs of every model token are the policy's over the exact sequence
        teacher = _teacher_logprobs(model, prompt, t.token_ids)
        mask = torch.tensor(t.loss_mask).bool()
        assert torch.allclose(torch.tensor(t.logprobs)[mask], teacher[mask], atol=1e-4)
        assert all(x == 0.0 for x, m in zip(t.logprobs, t.loss_mask) if m == 0)


def test_an_episode_waiting_on_a_tool_does_not_block_the_others(policy, runner):
    _, tok, sampler = policy
    prompt = tok("Q:")["input_ids"]
    # episode 0 waits (turn 1) for episode 1's third turn to open the gate
    samples = [Sample(prompt="q", metadata={"opens": i == 1}) for i in range(2)]

    class GateEnv(CallEveryTurn):
        def respond(self, trajectory, sample):
            turn = len(trajectory.model_turns)
            opens = sample.metadata["opens"]
            return ToolCalls((ToolCall("gate", {"open": turn == 3 and opens, "wait": not opens}),))

    stats = EpisodeStats()
    trajs = run_episodes(sampler, GateEnv("gate", max_turns=4, max_tokens=400), runner, [prompt] * 2, samples,
                         SamplingParams(max_new_tokens=8, stop=STOPS), tok, seed=1, stats=stats)
    first = trajs[0].turns[1].tool_results[0]
    assert first.status == "ok" and first.output == " passed ", first
    assert trajs[1].turns[5].tool_results[0].output == " opened "  # while episode 0 waited
    assert stats.generate_calls >= 4 and stats.episodes == 2
    assert trajs[0].tool_wait_s > 0


def test_the_token_budget_cuts_and_flags(policy, runner):
    _, tok, sampler = policy
    prompt = tok("Q:")["input_ids"]
    # an observation longer than what is left of a 12-token budget: cut to fit, flagged, counted
    trajs = run_episodes(sampler, SayOnce(" observation" * 40, max_tokens=12), runner, [prompt] * 4,
                         [Sample(prompt="q")] * 4, SamplingParams(max_new_tokens=4, stop=STOPS), tok, seed=0)
    cut = [t for t in trajs if t.turns[0].finish_reason == "stop"]
    assert cut
    for t in cut:
        assert len(t.token_ids) == 12 and t.end == "max_tokens" and t.truncated
        assert t.turns[-1].role == "env" and t.turns[-1].truncated
    assert episode_metrics(trajs)["episode/truncated"] == len(trajs)  # cut here or at the per-turn limit
    # a model turn capped by what is left of the budget (not by max_new_tokens): "max_tokens"
    trajs = run_episodes(sampler, SayOnce("", max_tokens=6), runner, [prompt] * 16, [Sample(prompt="q")] * 16,
                         SamplingParams(max_new_tokens=5, stop=(" ", "o")), tok, seed=2)
    assert all(len(t.token_ids) <= 6 for t in trajs)
    capped = [t for t in trajs if t.end == "max_tokens"]
    assert capped and all(len(t.token_ids) == 6 and t.turns[-1].role == "model" for t in capped)
    assert any(len(t.turns[-1].token_ids) < 5 for t in capped)  # the cap came from the budget


def _mentions_count(text: str, sample: Sample) -> Score:
    ok = "chars]" in text  # an observation's text: the verifier must not see it
    return Score(float(len(text)), not ok)


def test_collect_with_episodes_masks_observations_and_scores_model_text(policy, runner):
    _, tok, sampler = policy
    setup = EpisodeSetup(CallEveryTurn(max_turns=2, max_tokens=40), runner, tok)
    samples = [Sample(prompt="q", answer=1, metadata={"opens": False})] * 2
    batch = PromptBatch(samples, ["Q: 1 + 1 =", "Q: 2 + 5 ="], seed=3)
    with Scorer(_mentions_count, workers=0) as scorer:
        out = collect(sampler, scorer, batch, RolloutPlan(n=3, params=SamplingParams(max_new_tokens=5, stop=STOPS),
                                                          episodes=setup))
        groups, metrics = evaluate(sampler, scorer, batch, SamplingParams(temperature=0, max_new_tokens=5, stop=STOPS),
                                   episodes=setup)
    assert "tools/blocked_s" in out.stats.metrics()
    for g in out.groups:
        assert len(g.trajectories) == 3 and all(g.passed)
        for c, t, mask in zip(g.completions, g.trajectories, g.loss_masks):
            assert c.token_ids == t.token_ids and mask == t.loss_mask and 0.0 in mask
            assert c.text == t.text and "chars]" in c.text
        row = g.records()[0]
        assert [u["role"] for u in row["episode"]["turns"]][:2] == ["model", "env"]
    assert metrics["eval/accuracy"] == 1.0 and metrics["eval/tools/calls_per_episode"] >= 1


def test_observation_tokens_leave_the_gradient_unchanged(policy):
    """Observations are out of the policy loss, the KL and the entropy: changing every
    observation's logprobs (sampler, old, reference) and per-token advantages, and the ids of a
    trailing observation (ids inside the episode are context the later model tokens condition on),
    leaves the gradient bitwise unchanged under several presets; without the mask it moves."""
    import dataclasses

    from transformers import AutoModelForCausalLM

    from rlvr.presets import get_preset
    from rlvr.rollout import forward_logprobs, pack_groups, policy_loss
    from rlvr.rollout.records import ScoredGroup
    from rlvr.samplers import Completion

    model0, tok, _ = policy
    model = AutoModelForCausalLM.from_pretrained(model0.name_or_path, dtype=torch.float32)
    obs = torch.tensor([0.0] * 4 + [1.0] * 3 + [0.0] * 3 + [1.0] * 2)  # model, observation, model, observation
    mask = (1 - obs).tolist()
    algos = [dataclasses.replace(get_preset(name), kl_coef=0.1, kl_in="loss", entropy_coef=0.01)
             for name in ("grpo", "dapo", "dr_grpo", "gspo")]
    algos += [dataclasses.replace(algos[0], correction="seq_tis"), dataclasses.replace(algos[1], tis_cap=2.0)]

    def grads(tail: list[int], x: float, masked: bool) -> torch.Tensor:
        ids = [5, 6, 7, 8, 20, 21, 22, 9, 10, 11, *tail]
        lp = (-1.0 + x * obs).tolist()  # the sampler's logprobs: x at observations
        g = ScoredGroup(Sample(prompt="q"), "q", [3, 4], [Completion("x", ids, lp, "stop")], [Score(1.0, True)],
                        loss_masks=[mask if masked else [1.0] * len(ids)])
        batch = pack_groups([g], tok.pad_token_id)
        adv = (0.5 + 3 * x * obs)[None]  # (1, T) per-token advantages, changed at observations
        model.zero_grad()
        for algo in algos:
            logp, ent = forward_logprobs(model, batch, slice(0, 1), entropy="grad")
            ref = logp.detach() - 0.1 + x * obs  # the reference's, and the old policy's
            old = logp.detach() - 0.2 * torch.arange(12.0) / 12 - 0.5 * x * obs
            loss, _ = policy_loss(algo, logp, old, adv, batch.mask, max_len=12, ref_logp=ref,
                                  entropy=ent, sampler_logp=batch.sampler_logp)
            loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    assert torch.equal(grads([40, 41], 0.0, masked=True), grads([50, 51], -2.0, masked=True))  # bitwise
    assert not torch.equal(grads([40, 41], 0.0, masked=False), grads([50, 51], -2.0, masked=False))


@pytest.fixture(scope="module")
def taught(tiny_model_dir, tmp_path_factory):
    """The tiny model after learning the three scripted tool-call episodes (tests/trainers/episode_model.py)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.samplers import HFSampler

    from .episode_model import teach_tool_calls

    path = teach_tool_calls(tiny_model_dir, tmp_path_factory.mktemp("taught"))
    tok = AutoTokenizer.from_pretrained(path)
    return path, tok, HFSampler(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), tok)


def test_tool_environment_runs_calls_and_turns_mistakes_into_observations(taught, runner):
    """A good calculator call, an unknown tool and a malformed call: each ends as an observation
    in its call's format, the episode goes on, and each mistake is counted."""
    from rlvr.rollout.episodes import ToolEnvironment

    from .episode_model import CALL, MALFORMED, UNKNOWN

    _, tok, sampler = taught
    env = ToolEnvironment(["calculator"], ["hermes"], max_turns=3, max_tokens=200)
    prompts = [tok(p)["input_ids"] for p in ("A:", "B:", "C:")]
    trajs = run_episodes(sampler, env, runner, prompts, [Sample(prompt="q")] * 3,
                         SamplingParams(temperature=0, max_new_tokens=80), tok)
    good, unknown, malformed = trajs
    assert [t.turns[0].text for t in trajs] == [CALL, UNKNOWN, MALFORMED]  # each turn ended at </tool_call>
    assert good.turns[1].text == "<tool_response>\n42\n</tool_response>\n"
    assert good.tool_results[0].ok and good.end == "done" and "42" in good.turns[2].text
    assert unknown.tool_results[0].status == "error" and "unknown tool 'search'" in unknown.turns[1].text
    assert malformed.tool_calls[0].error and "malformed" in malformed.turns[1].text
    assert all(len(t.model_turns) >= 2 for t in trajs)  # the model read each observation and went on
    m = episode_metrics(trajs)
    assert (m["tools/calls_per_episode"], m["tools/errors"], m["tools/malformed"], m["tools/unknown"]) == (1.0, 2.0, 1.0, 1.0)


def test_a_bug_in_the_environment_is_raised_naming_it(policy, runner):
    """The model's mistakes are observations; the environment's own exception is a bug, and says whose."""
    _, tok, sampler = policy

    class Broken(Environment):
        def respond(self, trajectory, sample):
            return {}["missing"]

    with pytest.raises(RuntimeError, match=r"Broken\.respond raised after model turn 1: KeyError"):
        run_episodes(sampler, Broken(), runner, [tok("Q:")["input_ids"]], [Sample(prompt="q")],
                     SamplingParams(max_new_tokens=40, stop=STOPS), tok, seed=0)


@pytest.mark.docker
def test_python_calls_run_in_the_docker_pool_inside_episodes(taught):
    """A fenced python block runs in the Docker warm pool and its output is the next observation."""
    from rlvr.rollout.episodes import ToolEnvironment
    from tests.verifiers.conftest import make_box

    from .episode_model import FENCE

    _, tok, sampler = taught
    box = make_box("docker")
    try:
        with ToolRunner(["python"], sandbox=box, timeout_s=20) as r:
            env = ToolEnvironment(["python"], ["python_fence"], max_turns=3, max_tokens=200)
            trajs = run_episodes(sampler, env, r, [tok("D:")["input_ids"]] * 2, [Sample(prompt="q")] * 2,
                                 SamplingParams(temperature=0, max_new_tokens=80), tok)
    finally:
        box.close()
    for t in trajs:
        assert t.turns[0].text == FENCE and t.turns[1].text == "```output\n42\n```\n"
        assert t.tool_results[0].ok and t.end == "done" and "42" in t.turns[2].text
