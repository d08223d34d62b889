"""rlvr cai: critique and revise responses against a list of principles with a judge model
(Constitutional AI's supervised stage), writing SFT rows and preference pairs.

    rlvr cai --input prompts.jsonl --principles principles.yaml --endpoint http://127.0.0.1:8000 --out runs/cai
    rlvr sft data.train=runs/cai/sft.jsonl ...        # train on the revisions
    rlvr dpo data.train=runs/cai/pairs.jsonl ...      # prefer the revision to the original

Input rows: ``{"prompt": ..., "response": ...}``; a row without ``response`` gets one from the
model first (``--response-template`` renders the prompt; default the prompt as is). Principles: a
YAML list of strings, or of ``{name, critique, revision}`` (the critique and revision requests), or
``--principle TEXT`` (repeatable). Each round draws one principle per row (seeded) and asks the
model, in the format of the Constitutional AI paper:

    Human: <prompt>  Assistant: <response>  Critique request: <critique>  Critique:  -> the critique
    ... Critique: <critique>  Revision request: <revision>  Revision:                -> the revision

The revision (cut where the model starts a new "Human:" or request turn) becomes the response of
the next round. Outputs in ``--out``: ``sft.jsonl`` (``{"prompt", "completion"}`` for ``rlvr sft``),
``pairs.jsonl`` (``{"prompt", "chosen": final revision, "rejected": original}`` for ``rlvr dpo``),
``trace.jsonl`` (every critique and revision, with errors) and ``summary.json``. A row whose request
fails (timeout, HTTP error) or whose revision is empty is kept only in the trace. With
``--judge-filter`` the judge verifier scores original and revision against the principles and a pair
is written only when the revision scores strictly higher.

What it does not do: start the model (``rlvr serve --model DIR``), or make a small model's
critiques sensible: the judge model's quality is the data's quality.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CritiqueRow", "Principle", "add_arguments", "clean_revision", "load_principles", "load_rows", "run"]

CRITIQUE = "Human: {prompt}\n\nAssistant: {response}\n\nCritique request: {critique}\n\nCritique:"
REVISION = CRITIQUE + " {critique_text}\n\nRevision request: {revision}\n\nRevision:"
_TURN_MARKERS = ("\nHuman:", "\nAssistant:", "\nCritique request:", "\nRevision request:", "\nCritique:")


@dataclass(frozen=True)
class Principle:
    name: str
    critique: str
    revision: str


@dataclass
class CritiqueRow:
    """One prompt's way through the rounds."""

    line: int
    prompt: str
    original: str | None
    response: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _principle(entry: Any, where: str) -> Principle:
    if isinstance(entry, str) and entry.strip():
        return Principle(entry.strip()[:60], f"Identify specific ways in which the response does not follow this principle: {entry.strip()}",
                         f"Rewrite the response so that it follows this principle: {entry.strip()}")
    if isinstance(entry, dict):
        for key in ("critique", "revision"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise _input_error(f"{where}: field {key!r} must be a non-empty string")
        extra = set(entry) - {"name", "critique", "revision"}
        if extra:
            raise _input_error(f"{where}: unknown field(s) {sorted(extra)} (use name, critique, revision)")
        return Principle(str(entry.get("name") or entry["critique"][:60]), entry["critique"].strip(), entry["revision"].strip())
    raise _input_error(f"{where}: a principle is a non-empty string or a mapping with critique and revision, got {entry!r}")


def _input_error(message: str) -> Exception:
    from rlvr.io import InputError

    return InputError(message)


def load_principles(path: str | None, inline: list[str]) -> list[Principle]:
    """Principles from a YAML file (a list) and/or ``--principle`` texts; errors name the entry."""
    out: list[Principle] = []
    if path:
        import yaml

        try:
            entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise _input_error(f"--principles {path}: cannot be read as YAML: {e}") from None
        if not isinstance(entries, list) or not entries:
            raise _input_error(f"--principles {path}: expected a non-empty YAML list of principles")
        out += [_principle(e, f"{path}: principle {i + 1}") for i, e in enumerate(entries)]
    out += [_principle(t, f"--principle {t!r}") for t in inline]
    if not out:
        raise _input_error("give --principles FILE or at least one --principle TEXT")
    return out


def load_rows(path: str, limit: int | None = None) -> list[CritiqueRow]:
    """Rows of the input JSONL; a missing or non-string field is an error naming file:line."""
    from rlvr.io import JsonlError, iter_jsonl_lines, parse_jsonl_line

    rows: list[CritiqueRow] = []
    try:
        lines = list(iter_jsonl_lines(path))
    except FileNotFoundError:
        raise _input_error(f"--input {path}: no such file") from None
    for no, text in lines:
        if isinstance(text, JsonlError):
            raise text
        row = parse_jsonl_line(text, path, no)
        if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise _input_error(f"{path}:{no}: field 'prompt' must be a non-empty string")
        if row.get("response") is not None and not isinstance(row["response"], str):
            raise _input_error(f"{path}:{no}: field 'response' must be a string")
        rows.append(CritiqueRow(no, row["prompt"], row.get("response"), row.get("response")))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise _input_error(f"--input {path}: no rows")
    return rows


def clean_revision(text: str) -> str:
    """The revision up to where the model starts another dialogue turn or request, stripped.

    >>> clean_revision(" Be kind.\\n\\nHuman: next question")
    'Be kind.'
    """
    cut = min((i for i in (text.find(m) for m in _TURN_MARKERS) if i >= 0), default=len(text))
    return text[:cut].strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rlvr cai``."""
    parser.add_argument("--input", required=True, help="JSONL rows with 'prompt' (and optionally 'response')")
    parser.add_argument("--principles", default=None, help="YAML list of principles (strings or {name, critique, revision})")
    parser.add_argument("--principle", action="append", default=[], help="a principle as text (repeatable)")
    parser.add_argument("--endpoint", required=True, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000 (rlvr serve)")
    parser.add_argument("--model", default=None, help="model name sent to the endpoint (vLLM's served name)")
    parser.add_argument("--api", choices=("completions", "chat"), default="completions")
    parser.add_argument("--out", required=True, help="output directory (sft.jsonl, pairs.jsonl, trace.jsonl, summary.json)")
    parser.add_argument("--rounds", type=int, default=1, help="critique-revision rounds per row (default 1)")
    parser.add_argument("--response-template", default="none", help="template for first responses (rlvr.templates; default none)")
    parser.add_argument("--judge-filter", action="store_true", help="keep a pair only when the judge scores the revision higher")
    parser.add_argument("--limit", type=int, default=None, help="the first N rows")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--timeout-s", type=float, default=120.0, help="deadline per request (retries included)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per request (completions API)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the principle drawn per row and round")


def _ask(client: Any, texts: list[str], rows: list[CritiqueRow], what: str) -> list[str | None]:
    """Replies for `texts` (one per row); a failed request marks its row's error."""
    replies = client.complete(texts)
    if replies and all(r is None and e not in ("timeout",) for r, e, _ in replies):
        raise _input_error(f"--endpoint {client.endpoint}: no {what} request succeeded ({replies[0][1]}: {replies[0][2][:300]})")
    out: list[str | None] = []
    for row, (reply, error, message) in zip(rows, replies):
        if reply is None:
            row.error = f"{what}: {error} {message[:200]}".strip()
        out.append(reply)
    return out


def _revise(client: Any, rows: list[CritiqueRow], principles: list[Principle], rounds: int, seed: int) -> None:
    for r in range(rounds):
        live = [row for row in rows if row.error is None]
        picks = [principles[random.Random(f"{seed}:{row.line}:{r}").randrange(len(principles))] for row in live]
        crit_texts = [CRITIQUE.format(prompt=row.prompt, response=row.response, critique=p.critique) for row, p in zip(live, picks)]
        critiques = [clean_revision(c) if c is not None else None for c in _ask(client, crit_texts, live, "critique")]
        go = [(row, p, c) for row, p, c in zip(live, picks, critiques) if c is not None]
        rev_texts = [REVISION.format(prompt=row.prompt, response=row.response, critique=p.critique, critique_text=c,
                                     revision=p.revision) for row, p, c in go]
        revisions = _ask(client, rev_texts, [row for row, _, _ in go], "revision")
        for (row, p, c), rev in zip(go, revisions):
            if rev is None:
                continue
            text = clean_revision(rev)
            row.steps.append({"round": r, "principle": p.name, "critique": c, "revision": text, "raw_revision": rev})
            if not text:
                row.error = "revision: empty"
            else:
                row.response = text


def run(args: argparse.Namespace) -> int:
    """Read rows and principles, critique and revise, write the four outputs."""
    from rlvr.io import write_jsonl
    from rlvr.templates import render
    from rlvr.verifiers import Sample
    from rlvr.verifiers.judge import JudgeVerifier

    if args.rounds < 1:
        raise _input_error(f"--rounds {args.rounds}: must be >= 1")
    principles = load_principles(args.principles, args.principle)
    rows = load_rows(args.input, args.limit)
    rubric = "The response follows these principles:\n" + "\n".join(f"- {p.name}: {p.critique}" for p in principles)
    client = JudgeVerifier(args.endpoint, model=args.model, rubric=rubric, api=args.api, batch_size=args.batch_size,
                           concurrency=args.concurrency, timeout_s=args.timeout_s, max_tokens=args.max_tokens,
                           temperature=args.temperature)
    fresh = [row for row in rows if row.original is None]
    if fresh:
        replies = _ask(client, [render(args.response_template, row.prompt) for row in fresh], fresh, "response")
        for row, reply in zip(fresh, replies):
            row.original = row.response = None if reply is None else clean_revision(reply)
            if reply is not None and not row.original:
                row.error = "response: empty"
    _revise(client, rows, principles, args.rounds, args.seed)
    done = [row for row in rows if row.error is None and row.steps]
    keep = {id(row): row.response != row.original for row in done}
    if args.judge_filter and done:
        samples = [Sample(prompt=row.prompt) for row in done]
        before = client.score_many([row.original for row in done], samples)
        after = client.score_many([row.response for row in done], samples)
        for row, b, a in zip(done, before, after):
            row.steps.append({"judge_original": b.to_dict(), "judge_revision": a.to_dict()})
            ok = "error" not in b.info and "error" not in a.info and a.reward > b.reward
            keep[id(row)] = keep[id(row)] and ok
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "sft.jsonl", [{"prompt": row.prompt, "completion": row.response} for row in done])
    pairs = [{"prompt": row.prompt, "chosen": row.response, "rejected": row.original} for row in done if keep[id(row)]]
    write_jsonl(out / "pairs.jsonl", pairs)
    write_jsonl(out / "trace.jsonl", [{"line": row.line, "prompt": row.prompt, "original": row.original, "final": row.response,
                                       "steps": row.steps, "error": row.error} for row in rows])
    summary = {"rows": len(rows), "sft_rows": len(done), "pairs": len(pairs), "failed": sum(row.error is not None for row in rows),
               "rounds": args.rounds, "principles": [p.name for p in principles], "judge_filter": bool(args.judge_filter)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"rlvr cai: {len(rows)} rows -> {len(done)} SFT rows, {len(pairs)} pairs, {summary['failed']} failed; {out}")
    return 0
