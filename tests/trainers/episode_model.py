"""A tiny model that has learnt three tool-call episodes by heart, for the episode tests.

A random tiny model never writes a tool call, so the tests teach one (a few hundred milliseconds
of supervised steps on the session's tiny model) three scripted episodes, greedy-exact:
- ``A:`` calls the calculator well (``6*7``) and, after the result, answers;
- ``B:`` calls a tool that does not exist (``search``);
- ``C:`` writes a malformed call (bad JSON);
- ``D:`` writes a fenced python block (for the python tool) and, after its output, answers.
Each episode is taught as the loop builds it: the turns tokenized one by one and concatenated.
"""

from __future__ import annotations

from pathlib import Path

import torch

CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'
UNKNOWN = '<tool_call>{"name": "search", "arguments": {"q": "6*7"}}</tool_call>'
MALFORMED = "<tool_call>{name: calculator}</tool_call>"
FENCE = "```python\nprint(6*7)\n```\n"
SCRIPTS = {
    "A:": [CALL, "<tool_response>\n42\n</tool_response>\n", " The answer is 42."],
    "B:": [UNKNOWN, "<tool_response>\nerror\n</tool_response>\n", " I give up."],
    "C:": [MALFORMED, "<tool_response>\nerror\n</tool_response>\n", " Oops."],
    "D:": [FENCE, "```output\n42\n```\n", " The answer is 42."],
}


def teach_tool_calls(src: str | Path, out: Path, steps: int = 150) -> Path:
    """Copy the model at `src` to `out` after `steps` AdamW steps on the three scripts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    rows = []
    for prompt, turns in SCRIPTS.items():
        ids = list(tok(prompt)["input_ids"])
        start = len(ids)
        for text in turns:
            ids += tok.encode(text, add_special_tokens=False)
        rows.append((ids + [tok.eos_token_id], start))
    width = max(len(ids) for ids, _ in rows)
    x = torch.full((len(rows), width), tok.pad_token_id)  # (3, T)
    labels = torch.full((len(rows), width), -100)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, start) in enumerate(rows):
        x[i, :len(ids)] = torch.tensor(ids)
        labels[i, start:len(ids)] = torch.tensor(ids[start:])
        attn[i, :len(ids)] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=x, attention_mask=attn, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
