"""The tool demo: its corpus speaks the real call and observation formats, the products task, the
shipped base model's behaviour before RL, `--preset tool_demo`, and the report's tool panels."""

from __future__ import annotations

import json
import re

import pytest

from rlvr.demo import tool_corpus as tc
from rlvr.demo.tool_pretrain import SHIPPED_DIR, ensure_tool_model
from rlvr.tools.base import ToolResult
from rlvr.tools.parse import format_observation, parse_calls, stops_for

N_DOCS = 4_000
_PRODUCT = re.compile(r"(\d{3}) ?(?:\*|times|and|by) ?(\d{2})\b")


@pytest.fixture(scope="module")
def docs():
    return tc.sample_documents(N_DOCS, seed=0)


def test_corpus_calls_and_outputs_are_the_real_formats():
    """What the corpus writes is exactly what the episode loop parses, stops at and appends."""
    call, obs, answer = tc.tool_episode(347, 89)
    [parsed] = parse_calls(call, formats=["python_fence"])
    assert parsed.name == "python" and parsed.error is None and parsed.arguments == {"code": "print(347 * 89)\n"}
    stop = stops_for(["python_fence"])[0]
    assert call.endswith(stop) and call.count(stop) == 1  # the model's turn ends exactly at the call's end
    # the python tool prints "30883\n"; the environment shows it as the corpus does
    assert format_observation([parsed], [ToolResult("30883\n")]) == obs
    assert tc.parse_tagged_answer(answer) == 30883


def test_mix_rare_calls_and_right_products(docs):
    chats = [d for d in docs if "\nAssistant:" in d]
    calls = [d for d in chats if "Assistant: ```python" in d]
    assert 0.05 < len(calls) / len(chats) < 0.11  # TOOL_FRACTION = 8%
    for d in calls[:200]:
        a, b = (int(x) for x in re.search(r"What is (\d+) \* (\d+)\?", d).groups())
        assert d.endswith("".join(tc.tool_episode(a, b))), d
    for d in docs[:3000]:
        for m in _PRODUCT.finditer(d):
            assert str(int(m.group(1)) * int(m.group(2))) in d[m.end():], d


def test_held_out_products_never_appear(docs):
    for d in docs:
        for m in _PRODUCT.finditer(d):
            assert not tc.is_held_out(int(m.group(1)), int(m.group(2))), d


def test_products_task_splits_and_environment():
    from rlvr.rollout.episodes import ToolEnvironment
    from rlvr.tasks import get_task

    task = get_task("products")
    train, test = task.samples("train", 500), task.samples("test")
    assert {s.prompt for s in train}.isdisjoint({s.prompt for s in test})
    assert all(int(s.answer) == s.metadata["a"] * s.metadata["b"] for s in train + test)
    assert [(s.metadata["a"], s.metadata["b"]) for s in test[:20]] == tc.eval_pairs(20)
    assert task.render(test[0]) == tc.demo_prompt(*tc.eval_pairs(1)[0])
    env = task.environment()
    assert isinstance(env, ToolEnvironment) and env.tools == ("python",) and env.stop == ("\n```\n",)


def _greedy(path, texts, max_new_tokens):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def test_shipped_base_model_before_rl():
    """Greedy, the shipped base model answers held-out products directly and mostly wrong (the demo's
    "before"); handed the tool's output block, it copies the number into the tags."""
    path = ensure_tool_model()
    assert path == SHIPPED_DIR
    meta = json.loads((path / "eval.json").read_text())
    assert meta["greedy_accuracy"] <= 0.2 and 0 < meta["sampled_tool_call_rate"] < 0.2, meta
    pairs = tc.eval_pairs(30)
    direct = _greedy(path, [tc.demo_prompt(a, b) for a, b in pairs], 12)
    assert not any("```python" in r for r in direct), direct
    assert sum(tc.parse_tagged_answer(r) == a * b for r, (a, b) in zip(direct, pairs)) <= 6, direct
    given = _greedy(path, [tc.demo_prompt(a, b) + "".join(tc.tool_episode(a, b)[:2]) for a, b in pairs], 10)
    assert sum(tc.parse_tagged_answer(r) == a * b for r, (a, b) in zip(given, pairs)) >= 27, given


def test_preset_tool_demo_names_the_shipped_config(capsys):
    from rlvr.cli import main
    from rlvr.commands.train import shipped_demo

    assert shipped_demo("tool_demo").name == "tool_demo.yaml" and shipped_demo("grpo") is None
    assert main(["train", "--preset", "tool_demo", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "demo-tool" in out and "products" in out and "preset: grpo" in out


def test_report_draws_tool_curves(tmp_path):
    from rlvr.report import write_report

    rows = [{"step": s, "reward/mean": s / 4, "accuracy": s / 4, "tools/calls_per_episode": s / 4,
             "episode/model_tokens": 12 + 4 * s, "episode/obs_tokens": 3.0 * s, "episode/turns": 1 + s / 4,
             **({"eval/accuracy": s / 4, "eval/tools/calls_per_episode": s / 4} if s % 2 == 0 else {})}
            for s in range(5)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = write_report(tmp_path).read_text()
    for panel in ("tool_calls", "episode_length", "turns"):
        assert (tmp_path / "report" / f"{panel}.png").is_file()
    assert "| eval/tools/calls_per_episode | 0 (0) | 1 (4) |" in report
