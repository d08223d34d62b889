"""The ``judge`` verifier: an LLM grades each completion against a rubric through any
OpenAI-compatible endpoint (``rlvr serve``, a vLLM server, a hosted API).

    >>> v = get_verifier("judge", endpoint="http://127.0.0.1:8000", model="judge",
    ...                  rubric="Is the answer correct and clearly explained?", scale=[0, 10])  # doctest: +SKIP
    >>> v.score_many(completions, samples)                                              # doctest: +SKIP

What it does:
- renders a judge prompt per item (the rubric, the task's prompt, the reference answer when the
  sample has one, the completion, and the instruction to end with ``Score: N``) and sends it to
  ``POST {endpoint}/v1/completions`` (``api="completions"``, the default: several items per request,
  ``batch_size`` of them, as ``rlvr serve`` and vLLM accept) or ``/v1/chat/completions``
  (``api="chat"``: one item per request);
- keeps up to ``concurrency`` requests in flight; each request has a deadline of ``timeout_s`` from
  when it is sent, covering its ``retries`` retries (connection errors, HTTP 429 and 5xx, with
  backoff); an item whose request misses the deadline gets ``info["error"] = "timeout"``;
- parses the score robustly (`parse_score`: ``Score: 7``, ``**Rating:** 7/10``, ``{"score": 7}``,
  ``<score>7</score>``, ``\\boxed{7}``, a last line that is only a number); reward = (score - low) / (high - low), in [0, 1];
- an unparseable judgment (or a score outside the scale) is failure as data, not a judged 0:
  ``info["error"] = "unparseable"`` (or ``"out_of_range"``), ``passed`` None, the raw judgment in
  ``info["judgment"]``, and reward 0.0; trainers count it in ``verifier/error_rate``;
- logs the judge's rationale: ``info["rationale"]`` (the judgment text before the score; it lands in
  rollouts.jsonl) and a DEBUG line on the ``rlvr.verifiers.judge`` logger;
- caches judgments keyed by (prompt, completion, rubric) (successful ones only; ``cache_size``
  entries, oldest dropped first), so a GRPO group's repeats and re-scored items cost one request;
- ``passed`` is None (a judge has no notion of correctness) unless ``threshold`` is set, then
  ``reward >= threshold``. When every request of a batch fails to reach the endpoint, it raises
  `JudgeUnavailable`: a judge that is down is a bug to fix, not a reward of 0 to train on.

As a batched verifier (it has `prefetch`), trainers score it in their own process, one
`score_many` per batch. What it does not do: start the judge model (``rlvr serve --model DIR``), or
make a small model's judgments meaningful: a tiny model's scores are noise.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.verifiers.base import Sample, Score, register_verifier

__all__ = ["DEFAULT_TEMPLATE", "JudgeUnavailable", "JudgeVerifier", "parse_score"]

log = logging.getLogger("rlvr.verifiers.judge")

DEFAULT_TEMPLATE = (
    "You are grading a response against a rubric.\n\n"
    "Rubric:\n{rubric}\n\nPrompt:\n{prompt}\n\n{reference}Response:\n{completion}\n\n"
    "Explain your judgment briefly, then end with a last line of the form \"Score: N\", "
    "where N is a number from {low} to {high}.\n\nJudgment:\n"
)
_KEYWORD = re.compile(r"(?:score|rating|grade)\**\s*(?:[:=]|is|of)?\s*\**\s*(-?\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?",
                      re.IGNORECASE)
_JSON = re.compile(r"\{[^{}]*\"(?:score|rating)\"\s*:\s*(-?\d+(?:\.\d+)?)[^{}]*\}", re.IGNORECASE)
_FRACTION = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)")
_TAGGED = re.compile(r"(?:<(?:score|answer)>\s*|\\boxed\{\s*)(-?\d+(?:\.\d+)?)\s*(?:</(?:score|answer)>|\})", re.IGNORECASE)
_BARE = re.compile(r"^\W*(-?\d+(?:\.\d+)?)\W*$")


class JudgeUnavailable(RuntimeError):
    """No request of a batch reached the judge endpoint (down, wrong URL, or rejecting every request)."""


def parse_score(text: str, low: float, high: float) -> tuple[float | None, str, int]:
    """(score, why, where) from a judgment. why: "ok", "unparseable" or "out_of_range"; where: the
    offset where the score's text starts (the rationale is the text before it).

    The last "score/rating/grade: N" wins, then a JSON object with "score", then a last
    ``<score>N</score>``, ``<answer>N</answer>`` or ``\\boxed{N}``, then a last "N/high",
    then a last line that is only a number. "N/D" with D other than `high` is rescaled to the scale.

    >>> parse_score("Clear and right.\\n**Score:** 8/10", 0, 10)[:2]
    (8.0, 'ok')
    """
    found: tuple[float, float | None, int] | None = None
    for rx in (_KEYWORD, _JSON, _TAGGED):
        hits = list(rx.finditer(text))
        if hits:
            m = hits[-1]
            den = m.group(2) if rx is _KEYWORD else None
            found = (float(m.group(1)), float(den) if den else None, m.start())
            break
    if found is None:
        hits = list(_FRACTION.finditer(text))
        if hits:
            found = (float(hits[-1].group(1)), float(hits[-1].group(2)), hits[-1].start())
    if found is None:
        lines = text.rstrip().splitlines()
        m = _BARE.match(lines[-1]) if lines else None
        if m:
            found = (float(m.group(1)), None, len(text.rstrip()) - len(lines[-1]))
    if found is None:
        return None, "unparseable", len(text)
    value, den, where = found
    if den is not None and den != high:
        if den <= 0:
            return None, "unparseable", where
        value = low + (high - low) * value / den
    if not low <= value <= high:
        return value, "out_of_range", where
    return value, "ok", where


@dataclass
class _Item:
    key: tuple[str, str, str]
    text: str  # the judge prompt
    score: Score | None = None


def _scale(scale: Any) -> tuple[float, float]:
    lo, hi = (0.0, float(scale)) if isinstance(scale, (int, float)) else (float(scale[0]), float(scale[1]))
    if not hi > lo:
        raise ValueError(f"judge: scale must be a maximum > 0 or [low, high] with high > low, got {scale!r}")
    return lo, hi


@register_verifier("judge")
class JudgeVerifier:
    """An LLM judge as a verifier; see the module docstring for what each option does."""

    def __init__(self, endpoint: str, model: str | None = None, rubric: str = "Is the response correct, complete and clear?",
                 scale: Any = (0, 10), *, api: str = "completions", template: str = DEFAULT_TEMPLATE,
                 batch_size: int = 8, concurrency: int = 4, timeout_s: float = 60.0, retries: int = 2,
                 backoff_s: float = 0.5, max_tokens: int = 256, temperature: float = 0.0,
                 threshold: float | None = None, cache_size: int = 100_000, api_key_env: str | None = None):
        if api not in ("completions", "chat"):
            raise ValueError(f"judge: api must be 'completions' or 'chat', got {api!r}")
        if min(batch_size, concurrency) < 1 or retries < 0 or timeout_s <= 0:
            raise ValueError("judge: batch_size and concurrency must be >= 1, retries >= 0, timeout_s > 0")
        if "{completion}" not in template:
            raise ValueError("judge: template lacks {completion}")
        try:
            template.format(rubric="", prompt="", completion="", reference="", low="", high="")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"judge: template has a field other than rubric, prompt, completion, reference, low, high: {e}") from None
        self.endpoint, self.model, self.rubric = endpoint.rstrip("/"), model, rubric
        self.low, self.high = _scale(scale)
        self.api, self.template, self.threshold = api, template, threshold
        self.batch_size = 1 if api == "chat" else int(batch_size)
        self.concurrency, self.timeout_s, self.retries, self.backoff_s = int(concurrency), float(timeout_s), int(retries), float(backoff_s)
        self.max_tokens, self.temperature, self.cache_size, self.api_key_env = int(max_tokens), float(temperature), int(cache_size), api_key_env
        self._cache: OrderedDict[tuple[str, str, str], Score] = OrderedDict()
        self._lock = threading.Lock()
        self._prefetched: dict[tuple[str, str], Score] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_cache=OrderedDict(), _lock=None, _prefetched={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ prompts and transport
    def judge_prompt(self, completion: str, sample: Sample) -> str:
        ref = "" if sample.answer in (None, "") else f"Reference answer:\n{sample.answer}\n\n"
        return self.template.format(rubric=self.rubric, prompt=sample.prompt, completion=completion,
                                    reference=ref, low=f"{self.low:g}", high=f"{self.high:g}")

    def _post(self, texts: list[str], timeout: float) -> list[str]:
        if self.api == "chat":
            path, body = "/v1/chat/completions", {"messages": [{"role": "user", "content": texts[0]}]}
        else:
            path, body = "/v1/completions", {"prompt": texts if len(texts) > 1 else texts[0]}
        body.update(max_tokens=self.max_tokens, temperature=self.temperature, n=1)
        if self.model:
            body["model"] = self.model
        headers = {"Content-Type": "application/json"}
        if self.api_key_env and os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            out = json.loads(resp.read())
        choices = sorted(out["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != len(texts):
            raise ValueError(f"judge: {len(texts)} prompts sent, {len(choices)} choices returned")
        return [c["message"]["content"] if self.api == "chat" else c["text"] for c in choices]

    def _request(self, texts: list[str], deadline: float) -> tuple[list[str] | None, str, str]:
        """(judgments, error, message): retries transport failures until `deadline`."""
        error, message = "timeout", ""
        for attempt in range(self.retries + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "timeout", message or f"no answer within {self.timeout_s:g} s"
            try:
                return self._post(texts, left), "", ""
            except urllib.error.HTTPError as e:
                error, message = f"http_{e.code}", e.read()[:500].decode("utf-8", "replace")
                if e.code != 429 and e.code < 500:
                    return None, error, message  # the request is wrong: retrying will not help
            except (TimeoutError, OSError) as e:  # URLError, refused, reset, socket timeout
                reason = getattr(e, "reason", e)
                error = "timeout" if isinstance(reason, TimeoutError) else "unreachable"
                message = f"{type(reason).__name__}: {reason}"
            except (ValueError, KeyError, TypeError) as e:
                return None, "bad_response", f"{type(e).__name__}: {e}"
            if attempt < self.retries:
                time.sleep(min(self.backoff_s * 2**attempt, max(0.0, deadline - time.monotonic())))
        return None, error, message

    # ------------------------------------------------------------------ scoring
    def _score(self, judgment: str) -> Score:
        value, why, where = parse_score(judgment, self.low, self.high)
        rationale = judgment[:where].strip()[-2000:]
        if why != "ok":
            log.debug("judge %s: %s", why, judgment[-300:])
            return Score(0.0, None, {"error": why, "judgment": judgment[-2000:], "rationale": rationale,
                                     **({"score": value} if value is not None else {})})
        reward = (value - self.low) / (self.high - self.low)
        passed = None if self.threshold is None else reward >= self.threshold
        log.debug("judge score %g: %s", value, rationale[-300:])
        return Score(reward, passed, {"score": value, "rationale": rationale})

    def complete(self, texts: Sequence[str]) -> list[tuple[str | None, str, str]]:
        """Send `texts` as prompts (`batch_size` per request, at most `concurrency` requests in flight,
        each with its own `timeout_s` deadline and retries); per text (reply, error, message), the
        reply None when the request failed. `rlvr cai` uses this for critiques and revisions."""
        batches = [list(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        results: dict[int, tuple[list[str] | None, str, str]] = {}
        done = threading.Condition()
        started: dict[int, float] = {}

        def work(b: int, deadline: float) -> None:
            out = self._request(batches[b], deadline)
            with done:
                results.setdefault(b, out)  # a request already declared timed out stays so
                done.notify_all()

        todo = list(range(len(batches)))
        with done:
            while todo or any(b not in results for b in started):
                live = [b for b in started if b not in results and time.monotonic() < started[b] + self.timeout_s]
                while todo and len(live) < self.concurrency:
                    b = todo.pop(0)
                    started[b] = time.monotonic()
                    threading.Thread(target=work, args=(b, started[b] + self.timeout_s), daemon=True).start()
                    live.append(b)
                for b in [b for b in started if b not in results and time.monotonic() >= started[b] + self.timeout_s]:
                    results[b] = (None, "timeout", f"no answer within {self.timeout_s:g} s")  # the thread ends at its socket timeout
                if todo or live:
                    wake = min((started[b] + self.timeout_s for b in live), default=time.monotonic())
                    done.wait(max(0.0, wake - time.monotonic()) + 0.01)
        out: list[tuple[str | None, str, str]] = []
        for b, batch in enumerate(batches):
            replies, error, message = results[b]
            out += [(replies[k], "", "") if replies is not None else (None, error, message) for k in range(len(batch))]
        return out

    def score_many(self, completions: Sequence[str], samples: Sequence[Any]) -> list[Score]:
        """One `Score` per completion, in order; distinct uncached items are judged in batches."""
        if len(completions) != len(samples):
            raise ValueError(f"judge: {len(completions)} completions but {len(samples)} samples")
        samples = [s if isinstance(s, Sample) else Sample.from_row(s) for s in samples]
        keys = [(s.prompt, c, self.rubric) for c, s in zip(completions, samples)]
        todo: dict[tuple[str, str, str], _Item] = {}
        with self._lock:
            for key, c, s in zip(keys, completions, samples):
                if key not in self._cache and key not in todo:
                    todo[key] = _Item(key, self.judge_prompt(c, s))
        items = list(todo.values())
        for it, (judgment, error, message) in zip(items, self.complete([it.text for it in items])):
            it.score = self._score(judgment) if judgment is not None else Score(0.0, None, {"error": error, "message": message})
        transport = [it for it in items if (it.score.info.get("error") or "").startswith(("unreachable", "http_", "bad_response"))]
        if items and len(transport) == len(items):
            info = items[0].score.info
            raise JudgeUnavailable(f"judge at {self.endpoint}: no request succeeded ({info['error']}: {info.get('message', '')})")
        with self._lock:
            for it in items:
                if "error" not in it.score.info:
                    self._cache[it.key] = it.score
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            return [self._cache.get(k) or todo[k].score for k in keys]

    def prefetch(self, completions: Sequence[str], samples: Sequence[Any]) -> None:
        """Judge a whole batch now; the per-item calls that follow read the cache."""
        self._prefetched = {(s.prompt if isinstance(s, Sample) else s.get("prompt", ""), c): sc
                            for c, s, sc in zip(completions, samples, self.score_many(completions, samples))}

    def __call__(self, completion: str, sample: Sample) -> Score:
        hit = self._prefetched.get((sample.prompt, completion))
        return hit if hit is not None else self.score_many([completion], [sample])[0]

    def __repr__(self) -> str:
        return f"JudgeVerifier(endpoint={self.endpoint!r}, model={self.model!r}, scale=[{self.low:g}, {self.high:g}])"
