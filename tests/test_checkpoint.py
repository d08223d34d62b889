"""Checkpoints are atomic, complete, and restore weights, optimizer, scheduler and RNG exactly."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlvr.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2))


def train_step(model, opt, sched):
    x = torch.randint(0, 50, (2, 8))
    loss = model(input_ids=x, labels=x).loss
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_roundtrip_restores_everything(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    train_step(model, opt, sched)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=opt, scheduler=sched, state={"data_pos": 7}, config_yaml="a: 1\n")
    expected_draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    expected_weights = {k: v.clone() for k, v in model.state_dict().items()}
    train_step(model, opt, sched)  # diverge

    model2 = tiny_model(seed=5)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 1.0 / (1 + s))
    state = load_checkpoint(latest_checkpoint(tmp_path), model=model2, optimizer=opt2, scheduler=sched2)
    assert state == {"step": 1, "data_pos": 7}
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected_draws
    for k, v in model2.state_dict().items():
        assert torch.equal(v, expected_weights[k]), k
    assert sched2.last_epoch == 1 and opt2.state_dict()["state"][0]["step"] == 1
    assert (path / "config.yaml").read_text() == "a: 1\n"
    # The weights load through the ordinary transformers path as well.
    assert isinstance(GPT2LMHeadModel.from_pretrained(path / "model"), GPT2LMHeadModel)


def test_keep_last_and_latest_pointer(tmp_path):
    model = tiny_model()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model=model, keep_last=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-000002", "step-000003"]
    assert latest_checkpoint(tmp_path).name == "step-000003"


def test_partial_checkpoint_is_never_picked(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path, 1, model=model)
    # A run killed mid-save leaves a temp dir and possibly a step dir without COMPLETE.
    (tmp_path / "checkpoints" / ".tmp-step-000002-999").mkdir()
    broken = tmp_path / "checkpoints" / "step-000002"
    broken.mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step-000002\n")
    assert latest_checkpoint(tmp_path).name == "step-000001"
    with pytest.raises(CheckpointError, match="no COMPLETE marker"):
        load_checkpoint(broken)


def test_resave_same_step_replaces_it(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path, 4, model=model, state={"v": 1})
    save_checkpoint(tmp_path, 4, model=model, state={"v": 2})
    assert json.loads((latest_checkpoint(tmp_path) / "state.json").read_text())["v"] == 2
    assert not [p for p in os.listdir(tmp_path / "checkpoints") if p.startswith(".")]


def test_wrong_model_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, 1, model=tiny_model())
    other = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(latest_checkpoint(tmp_path), model=other)
