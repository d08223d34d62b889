"""Find the final answer in a model completion (linear-time scans; no regex backtracking blowups).

Order (the first rule that finds something wins), applied to the text *outside* `<think>…</think>`:

1. the last closed `<answer>…</answer>`; inside it, rules 2-5 are applied again and the whole
   (cleaned) tag content is used when none of them fires;
2. the last `\\boxed{…}` / `\\fbox{…}` (balanced braces, nesting allowed; `\\boxed 5` also works).
   Boxes on the same line joined only by commas / "and" / "or" are kept together ("2, 3");
3. the last "Final Answer: …" (incl. "Final Answer: The final answer is $x$. I hope it is correct.");
4. the last GSM8K `#### …`;
5. the last "the (final) answer is …" / a line starting with "Answer: …".

Drafts inside `<think>` are only used when the think block is closed and nothing outside it holds
a final answer. An unclosed `<think>` (a truncated generation) gives no final answer. No rule
fires -> None: we never fall back to the last number in the text.

Try it::

    >>> from rlvr.verifiers._math_extract import extract_answer
    >>> extract_answer("<think>maybe \\\\boxed{3}</think> so <answer>4</answer>")
    '4'
    >>> extract_answer("We get 12 apples, then 5.") is None
    True
"""

from __future__ import annotations

import re

__all__ = ["MAX_COMPLETION_CHARS", "extract_answer", "find_boxed"]

MAX_COMPLETION_CHARS = 200_000  # longer completions are cut to their last this-many characters
MAX_ANSWER_CHARS = 50_000  # a longer final answer is cut (it then almost surely fails to parse)

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_JOIN_RE = re.compile(r"^[\s,;$]*(?:(?:and|or|&)[\s$]*)?$", re.IGNORECASE)
_FINAL_RE = re.compile(r"final\s+answer\s*\**\s*(?:is\b|[:：]|\**\s*\n)\s*\**\s*[:：]?", re.IGNORECASE)
_ANSWER_IS_RE = re.compile(r"\banswer\s+(?:is|would\s+be|=)\s*[:：]?", re.IGNORECASE)
_ANSWER_LINE_RE = re.compile(r"(?m)^[\s*#>_]*answer\s*[:：]", re.IGNORECASE)
_MATH_SEG = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$((?:[^$\\\n]|\\.)+?)\$", re.DOTALL)
_SEG_JOIN = re.compile(r"\s*(?:,\s*(?:and|or)?|and|or)\s*(?=\$|\\\(|\\\[)", re.IGNORECASE)
_ONE_NUMBER = re.compile(r"(?:[A-Za-z][A-Za-z',]*\s+)+(-?\$?\d[\d,]*(?:\.\d+)?)(?:\s+[A-Za-z][A-Za-z.]*)*\.?")
_REMARK = re.compile(r"\s*\((?=[^()]*[A-Za-z]{3})[^()]*\)\s*$")
_NEGATION = re.compile(r"\b(?:not|no|never|except|isn't|cannot|can't|neither|nor)\b", re.IGNORECASE)
_HOPE_RE = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.IGNORECASE)


_BRACE_TOKENS = re.compile(r"\\.|[{}]", re.DOTALL)


def _brace_pairs(s: str) -> dict[int, int]:
    """Map each '{' position to its matching '}' (escaped braces skipped), in one linear pass."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKENS.finditer(s):
        c = m.group(0)
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            pairs[stack.pop()] = m.start()
    return pairs


def _boxes(s: str) -> list[tuple[int, int, str]]:
    """All (start, end, content) of \\boxed / \\fbox in s, in order (nested boxes not listed)."""
    out: list[tuple[int, int, str]] = []
    pairs: dict[int, int] | None = None
    pos = 0
    while (m := _BOX_RE.search(s, pos)) is not None:
        j = m.end()
        if j < len(s) and s[j] == "{":
            if pairs is None:
                pairs = _brace_pairs(s)
            k = pairs.get(j, -1)
            if k < 0:
                pos = j + 1
                continue
            out.append((m.start(), k + 1, s[j + 1 : k]))
            pos = k + 1
        else:  # \boxed 5
            mm = re.match(r"[^\s$]+", s[j : j + 200])
            if mm and m.group(0)[-1].isspace():
                out.append((m.start(), j + mm.end(), mm.group(0)))
            pos = j + 1
    return out


def find_boxed(s: str) -> str | None:
    """Content of the last box in `s` (joined with boxes just before it on the same line)."""
    boxes = _boxes(s)
    if not boxes:
        return None
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        between = s[prev[1] : group[0][0]]
        if "\n" in between or not _JOIN_RE.match(between):
            break
        group.insert(0, prev)
    return ", ".join(b[2].strip() for b in group)


def _phrase_value(tail: str) -> str | None:
    """The answer right after a phrase such as "The answer is": math mode or up to sentence end."""
    tail = tail.lstrip().lstrip("*:：").lstrip()
    boxed = find_boxed(tail.split("\n\n", 1)[0])
    if boxed is not None:
        return boxed
    if re.search(r"\\(?:boxed|fbox)\s*\{", tail):
        return None  # an unclosed box: the generation was cut off before the answer ended
    tail = _HOPE_RE.sub("", tail.split("\n", 1)[0] if not tail.startswith(("$$", "\\[")) else tail[:5000])
    if tail.startswith(("$", "\\[", "\\(")):
        segments, pos = [], 0
        while (m := _MATH_SEG.match(tail, pos)) is not None:
            segments.append(next(g for g in m.groups() if g is not None).strip())
            pos = m.end()
            join = _SEG_JOIN.match(tail, pos)  # "$3$ and $4$", "$1$, $2$"
            if join is None:
                break
            pos = join.end()
        if segments:
            return ", ".join(segments)
        if not re.match(r"\$\s*\d", tail):
            return None  # math mode never closed: truncated ("$18." is currency and falls through)
    line = tail.split("\n", 1)[0][:2000]  # a longer "answer" is prose; the cap keeps every regex linear
    # sentence end: ". " or a final "." (a decimal point is followed by a digit)
    m = re.search(r"\.(?:\s|$)(?!\d)", line)
    if m:
        line = line[: m.start()]
    line = _REMARK.sub("", line.strip().strip("*").strip())  # "6 (since 2*3 = 6)" -> "6"
    return line or None


def _last_phrase(s: str, pattern: re.Pattern[str]) -> str | None:
    last = None
    for m in pattern.finditer(s):
        last = m
    if last is None:
        return None
    return _phrase_value(s[last.end() :])


def _gsm8k(s: str) -> str | None:
    idx = s.rfind("####")
    if idx < 0:
        return None
    value = s[idx + 4 :].strip().split("\n", 1)[0].strip()
    return value or None


def _from_region(s: str) -> str | None:
    for rule in (
        find_boxed,
        lambda t: _last_phrase(t, _FINAL_RE),
        _gsm8k,
        lambda t: _last_phrase(t, _ANSWER_IS_RE),
        lambda t: _last_phrase(t, _ANSWER_LINE_RE),
    ):
        value = rule(s)
        if value:
            return value
    return None


def _answer_tag(s: str) -> str | None:
    end = s.lower().rfind("</answer>")
    if end < 0:
        return None
    start = s.lower().rfind("<answer>", 0, end)
    if start < 0:
        return None
    content = s[start + len("<answer>") : end]
    value = _from_region(content)
    if value:
        return value
    whole = _HOPE_RE.sub("", content).strip()
    one = _ONE_NUMBER.fullmatch(whole)  # "<answer>The total is 18 pens</answer>": the one number
    if one and not _NEGATION.search(whole):
        return one.group(1)
    segs = list(_MATH_SEG.finditer(whole[:5000]))  # "<answer>The probability is $\\frac25$.</answer>"
    if len(segs) == 1 and not _NEGATION.search(whole):
        prose = whole[: segs[0].start()] + whole[segs[0].end() :]
        if re.fullmatch(r"[A-Za-z',\s]*[.!]?\s*", prose):
            return next(g for g in segs[0].groups() if g is not None).strip()
    return whole or None


def _split_think(s: str) -> tuple[str, str | None]:
    """(text outside think, closed think content or None). Unclosed think -> outside is the prefix."""
    low = s.lower()
    close = low.rfind("</think>")
    if close < 0:
        open_ = low.find("<think>")
        return (s if open_ < 0 else s[:open_]), None
    open_ = low.find("<think>", 0, close)
    inside = s[(open_ + 7 if open_ >= 0 else 0) : close]
    outside = (s[:open_] if open_ >= 0 else "") + "\n" + s[close + len("</think>") :]
    return outside, inside


def extract_answer(completion: str, boxed_only: bool = False, tag_only: bool = False) -> str | None:
    """The final answer of `completion` as a string, or None when there is no final answer.

    `boxed_only` keeps only rule 2 (the last box), still outside `<think>` first. `tag_only` keeps
    only rule 1 (the last closed `<answer>…</answer>`), for rewards that must teach the tags:
    "The answer is 71." then earns nothing.
    """
    if not isinstance(completion, str) or not completion:
        return None
    s = completion[-MAX_COMPLETION_CHARS:]
    outside, inside = _split_think(s)
    for region in (outside, inside):
        if region is None:
            continue
        if tag_only:
            value = _answer_tag(region)
        else:
            value = find_boxed(region) if boxed_only else (_answer_tag(region) or _from_region(region))
        if value:
            return value.strip()[:MAX_ANSWER_CHARS] or None
    return None
