"""SmolLM2-135M (a real pretrained Llama: 30 layers, 49k vocabulary, tied embeddings, ChatML) end
to end in tiny batches: conversion, chat template, eval, a GRPO step with each sampler (the vLLM
one pushes the weights and checks them), LoRA train -> merge -> eval. The sync check's own tests
are in test_sync.py; the GRPO step on vLLM shares their engine (`smol_engine`, one per session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlvr.cli import main as rlvr_main
from rlvr.samplers import HFSampler, SamplingParams
from tests.trainers.conftest import small_config, write_config


def test_converted_model_is_smollm2_with_its_chat_template(smollm2, smol_model, smol_tokenizer):
    cfg = smol_model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == ("llama", 30, 576, 49152)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.tie_word_embeddings) == (9, 3, True)
    assert smol_model.lm_head.weight.data_ptr() == smol_model.model.embed_tokens.weight.data_ptr()
    assert "quantization_config" not in json.loads((smollm2 / "config.json").read_text())
    assert smol_tokenizer.eos_token == "<|im_end|>" and smol_tokenizer.eos_token_id == 2


def test_chat_template_prompt_and_greedy_answer_end_at_im_end(smol_model, smol_tokenizer):
    from rlvr.templates import render

    prompt = render("chat", "What is 2 + 3? Reply with the number only.", smol_tokenizer)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is 2 + 3? Reply with the number only.<|im_end|>" in prompt
    groups = HFSampler(smol_model, smol_tokenizer, batch_size=1).generate(
        [prompt], n=1, params=SamplingParams(temperature=0, max_new_tokens=24))
    c = groups[0].completions[0]
    assert c.finish_reason == "stop" and c.token_ids[-1] == 2  # the chat turn ends with <|im_end|>
    assert "<|im_end|>" not in c.text and "5" in c.text


def test_rlvr_eval_on_smollm2_writes_consistent_numbers(smollm2, tmp_path):
    out = tmp_path / "eval.jsonl"
    code = rlvr_main(["eval", "--model", str(smollm2), "--task", "arithmetic", "--task-option", "template=qwen_math_boxed",
                      "--limit", "2", "--n", "2", "--k", "1,2", "--max-new-tokens", "24", "--workers", "0",
                      "--threads", "1", "--output", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert len(rows) == 4 and summary["problems"] == 2 and summary["samples_per_problem"] == 2
    passed = [sum(bool(r["passed"]) for r in rows if r["index"] == i) for i in (0, 1)]
    assert summary["pass@1"][0] == pytest.approx(sum(p / 2 for p in passed) / 2)


def _train(tmp_path: Path, model_dir: Path, sampler=None, **sections) -> Path:
    """One GRPO step through `rlvr train`, or in-process on `sampler` (an engine already running)."""
    run = tmp_path / "run"
    cfg = small_config(run, model_dir, steps=1)
    cfg["task"].update(options={"level": 1, "n": 16, "n_test": 4, "template": "qwen_math_boxed"},
                       verifiers={"length": 1.0, "math": 0.0}, verifier_options={"length": {"max_chars": 64}})
    cfg["rollout"].update(prompts_per_step=2, group_size=2, max_new_tokens=12, chunks=1)
    cfg["optim"].update(micro_batch_size=4)
    cfg["logging"].update(eval_every=0)
    cfg["algo"] = {"kl_coef": 0.0}  # no reference model: one less 135M copy in memory
    cfg.setdefault("checkpoint", {}).update(every=0)
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg[key].update(value)
    path = write_config(tmp_path / "run.yaml", cfg)
    if sampler is None:
        assert rlvr_main(["train", str(path)]) == 0
    else:
        from rlvr.trainers.config import load_train_config
        from rlvr.trainers.grpo import train

        assert train(load_train_config(path), sampler=sampler)["finished"]
    return run


def _step_row(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows][-1] == 1
    return rows[-1]


def test_grpo_step_with_the_hf_sampler(smollm2, tmp_path):
    row = _step_row(_train(tmp_path, smollm2))
    assert row["length/mean"] > 0 and 0 < row["grad_norm"] < float("inf")  # the step updated the weights


def test_grpo_step_with_the_vllm_sampler_pushes_and_checks(smollm2, smol_engine, smol_model, tmp_path):
    # the session's fp32 engine (test_sync.py's), not a second 135M engine start; it holds the
    # original weights before this test (pushed and checked) and after it (pushed back)
    assert smol_engine.update_weights(smol_model).ok
    try:
        run = _train(tmp_path, smollm2, sampler=smol_engine, rollout={"backend": "vllm"})
    finally:
        smol_engine.update_weights(smol_model)
    row = _step_row(run)  # the trainer pushed after the step and the probe check passed (else it raises)
    assert row["length/mean"] > 0 and 0 < row["grad_norm"] < float("inf")


def test_lora_train_merge_eval(smollm2, smol_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = _train(tmp_path, smollm2, model={"lora": {"enabled": True, "r": 4, "alpha": 8}},
                 optim={"lr": 1e-2}, checkpoint={"every": 1, "keep_last": 0})
    adapter = sorted((run / "checkpoints").glob("step-*"))[-1] / "model"
    assert (adapter / "adapter_model.safetensors").is_file()
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32), adapter)
    ids = torch.tensor([[1, 504, 3658, 314, 253, 1345, 30, 2]])
    with torch.no_grad():
        want = peft_model(input_ids=ids).logits
        merged = peft_model.merge_and_unload()
        got = merged(input_ids=ids).logits
        base = smol_model(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert (got - base).abs().max() > 1e-3  # the adapter trained: the merged model is not the base
    out = tmp_path / "merged"
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(smollm2).save_pretrained(out)
    code = rlvr_main(["eval", "--model", str(out), "--task", "arithmetic", "--limit", "1", "--n", "1",
                      "--max-new-tokens", "8", "--workers", "0", "--threads", "1", "--output", str(tmp_path / "e.jsonl")])
    assert code == 0 and json.loads((tmp_path / "e.summary.json").read_text())["problems"] == 1
