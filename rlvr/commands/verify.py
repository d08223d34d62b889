"""rlvr verify: score a JSONL file of completions with a verifier, and summarise the result.

    rlvr verify --verifier math --input rows.jsonl --output scored.jsonl [--workers N] [--strict]
    rlvr verify --verifier math=1,format=0.1 --input rows.jsonl --output scored.jsonl
    rlvr verify --verifier math --option timeout_s=2 --input rows.jsonl --output scored.jsonl
    rlvr verify --import my_verifiers.py --verifier last_line_equals --input rows.jsonl --output out.jsonl

Each input line is a JSON object holding ``completion`` plus the sample's fields (``prompt``,
``answer``, ``tests``, ``metadata``; any other field goes to the sample's metadata, see
`Sample.from_row`). Each scored row is written back with every original field kept and
``reward``, ``passed`` and ``info`` added (replacing any earlier ones), in input order, atomically.

Malformed rows (invalid JSON, not an object, no ``completion``, a field of the wrong type) are
skipped: they are not written to the output, and the summary lists each one as ``file:line:
field: problem``. ``--strict`` instead stops at the first one with exit code 2 and writes nothing.

Exit codes: 0 when every row was scored (rows that fail verification are data), 1 when the
verifier raised on some rows (a bug in verifier code: the output is still written and the first
traceback is logged), 2 for bad usage, a missing input, an unknown verifier or a ``--strict`` stop.

Scoring goes through `rlvr.scoring.score_batch` (worker processes with a per-row deadline;
``--workers 0`` scores in this process). This module does no concurrency of its own.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["add_arguments", "import_plugins", "parse_options", "parse_verifier", "read_rows", "run", "summarize"]

# Fields a scored row gets; earlier values are replaced, and they never reach the Sample.
OUTPUT_FIELDS = ("reward", "passed", "info")
MAX_LISTED = 20  # malformed rows listed in the summary (all of them go to --summary-json)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rlvr verify``."""
    parser.add_argument("--verifier", required=True, metavar="NAME[=W,NAME=W...]",
                        help="a registered verifier (math, format, code, ...) or weights for "
                             "combine(), e.g. math=1,format=0.1")
    parser.add_argument("--input", "-i", required=True, metavar="ROWS.jsonl",
                        help="one JSON object per line: completion + prompt/answer/tests/metadata")
    parser.add_argument("--output", "-o", required=True, metavar="SCORED.jsonl",
                        help="where scored rows go (written atomically; parent dirs are created)")
    parser.add_argument("--workers", "-w", type=int, default=None, metavar="N",
                        help="worker processes (default: one per CPU); 0 scores in this process")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="per-row deadline in seconds (default: the verifier's own timeout_s + 0.5, else 10)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a verifier option, value read as YAML (repeatable); with several "
                             "verifiers prefix the component: math.timeout_s=2")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE | FILE.py",
                        help="import a module or .py file first, so its @register_verifier verifiers "
                             "can be named (repeatable)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first malformed row (exit code 2) instead of skipping it")
    parser.add_argument("--summary-json", metavar="PATH", default=None,
                        help="also write the summary (counts, malformed rows) as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# ----------------------------------------------------------------------------- verifier
def parse_options(tokens: Sequence[str]) -> dict[str, Any]:
    """``["timeout_s=2", "tags=[a, b]"]`` -> ``{"timeout_s": 2, "tags": ["a", "b"]}`` (YAML values)."""
    import yaml

    from rlvr.io import InputError

    out: dict[str, Any] = {}
    for tok in tokens:
        key, sep, raw = tok.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {tok!r}: expected KEY=VALUE, e.g. --option timeout_s=2")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def parse_verifier(spec: str, options: dict[str, Any] | None = None) -> Any:
    """A scoring spec from ``--verifier``: ``("math", options)`` or a `combine(...)` of weights.

    Every name is resolved (and each verifier built once) here, so an unknown name or a bad
    option fails before any row is read, with the closest known name suggested.
    """
    from rlvr.io import InputError
    from rlvr.verifiers import VerifierError, combine, get_verifier

    options = dict(options or {})
    if "=" not in spec and "," not in spec:
        return _check(get_verifier, spec.strip(), options)
    weights: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",")):
        name, sep, w = part.partition("=")
        name = name.strip()
        try:
            weight = float(w) if sep else 1.0
        except ValueError:
            raise InputError(f"--verifier {spec!r}: weight of {name!r} is not a number: {w!r}") from None
        if not name or name in weights:
            raise InputError(f"--verifier {spec!r}: expected distinct NAME=WEIGHT pairs, e.g. math=1,format=0.1")
        weights[name] = weight
    per: dict[str, dict[str, Any]] = {name: {} for name in weights}
    for key, value in options.items():
        comp, dot, opt = key.partition(".")
        if not dot or comp not in per:
            raise InputError(f"--option {key}=...: with several verifiers, prefix the component "
                             f"({', '.join(per)}), e.g. --option {next(iter(per))}.{key.split('.')[-1]}=...")
        per[comp][opt] = value
    try:
        return combine(weights, verifiers={name: _check(get_verifier, name, opts) for name, opts in per.items()})
    except VerifierError as e:
        raise InputError(f"--verifier {spec!r}: {e}") from None


def _check(get_verifier: Any, name: str, options: dict[str, Any]) -> Any:
    """Build the verifier once (errors surface now); return what to send to scoring workers.

    rlvr's own verifiers go by name (``(name, options)``; workers rebuild them). A verifier from
    another module (``--import``, an entry point) goes as the built object, which pickles by
    reference, so workers import its module without needing the registration to have run.
    """
    from rlvr.io import InputError
    from rlvr.verifiers import VerifierError

    try:
        built = get_verifier(name, **options)
    except VerifierError:
        raise
    except (TypeError, ValueError) as e:
        raise InputError(f"verifier {name!r}: bad options {options}: {e}") from None
    module = getattr(getattr(built, "fn", built), "__module__", "") or ""
    return (name, options) if module.startswith("rlvr.") or ":" in name else built  # file refs reload by name


def import_plugins(targets: Sequence[str]) -> None:
    """Import modules or ``.py`` files (`rlvr.plugins.import_targets`; workers import them too)."""
    from rlvr.plugins import import_targets

    import_targets(targets)


# ----------------------------------------------------------------------------- rows
def _row_sample(row: dict[str, Any], path: str, line: int) -> tuple[str, Any]:
    """(completion, Sample) of one row; JsonlError naming the field when a field is wrong."""
    from rlvr.io import JsonlError
    from rlvr.verifiers import Sample

    if "completion" not in row:
        raise JsonlError(path, line, "missing (every row needs the model's completion)", field="completion")
    checks = {"completion": (str,), "prompt": (str, type(None)), "metadata": (dict, type(None))}
    for name, types_ in checks.items():
        if name in row and not isinstance(row[name], types_):
            want = {"completion": "a string", "prompt": "a string or null", "metadata": "an object or null"}[name]
            got = type(row[name]).__name__ if row[name] is not None else "null"
            raise JsonlError(path, line, f"expected {want}, got {got} {_short(row[name])}", field=name)
    fields = {k: v for k, v in row.items() if k != "completion" and k not in OUTPUT_FIELDS}
    return row["completion"], Sample.from_row(fields)


def _short(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def read_rows(path: str, strict: bool = False) -> tuple[list[tuple[dict[str, Any], str, Any]], list[Any]]:
    """Good rows as ``(row, completion, Sample)`` and malformed ones as `JsonlError`s (strict: raise the first)."""
    from rlvr.io import JsonlError, iter_jsonl_lines, parse_jsonl_line

    good: list[tuple[dict[str, Any], str, Any]] = []
    bad: list[JsonlError] = []
    for line, text in iter_jsonl_lines(path):
        try:
            if isinstance(text, JsonlError):
                raise text
            row = parse_jsonl_line(text, path, line)
            completion, sample = _row_sample(row, path, line)
        except JsonlError as e:
            if strict:
                raise JsonlError(e.path, e.line, e.message + " (--strict stops at the first bad row)",
                                 field=e.field) from None
            bad.append(e)
            continue
        good.append((row, completion, sample))
    return good, bad


# ----------------------------------------------------------------------------- summary
def _reasons(info: dict[str, Any]) -> list[str]:
    """info["reason"], or for a combine() each component's reason as ``name:reason``."""
    if isinstance(info.get("reason"), str):
        return [info["reason"]]
    weights = info.get("weights")
    if isinstance(weights, dict):
        return [f"{k}:{info[k]['reason']}" for k in weights
                if isinstance(info.get(k), dict) and isinstance(info[k].get("reason"), str)]
    return []


def summarize(scores: Sequence[Any], malformed: Sequence[Any], elapsed_s: float, report: Any = None) -> dict[str, Any]:
    """Counts over scored rows: pass rate, mean reward, reasons, errors, timeouts, rows/s.

    >>> from rlvr.verifiers import Score
    >>> s = summarize([Score(1.0, True), Score(0.0, False, {"reason": "mismatch"})], [], 2.0)
    >>> s["pass_rate"], s["reasons"], s["rows_per_s"]
    (0.5, {'mismatch': 1}, 1.0)
    """
    n = len(scores)
    passed = sum(1 for s in scores if s.passed is True)
    failed = sum(1 for s in scores if s.passed is False)
    reasons: Counter[str] = Counter(r for s in scores for r in _reasons(s.info or {}))
    errors: Counter[str] = Counter(str(s.info["error"]) for s in scores if (s.info or {}).get("error"))
    out = {
        "rows": n,
        "passed": passed,
        "failed": failed,
        "no_opinion": n - passed - failed,
        "pass_rate": passed / n if n else None,
        "mean_reward": sum(float(s.reward) for s in scores) / n if n else None,
        "reasons": dict(reasons.most_common()),
        "errors": dict(errors.most_common()),
        "timeouts": errors.get("timeout", 0),
        "crashes": errors.get("crash", 0),
        "exceptions": errors.get("exception", 0),
        "malformed": len(malformed),
        "malformed_rows": [str(e) for e in malformed],
        "elapsed_s": round(elapsed_s, 3),
        "rows_per_s": round(n / elapsed_s, 1) if elapsed_s > 0 else None,
    }
    if report is not None and getattr(report, "first_traceback", None):
        out["exception_types"] = dict(getattr(report, "exception_types", {}) or {})
        out["first_traceback"] = report.first_traceback
    return out


def render_summary(summary: dict[str, Any], console: Any, title: str = "rlvr verify") -> None:
    """Print the summary as a rich table, then the malformed rows (at most MAX_LISTED)."""
    from rich.table import Table
    from rich.text import Text

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    n = summary["rows"]
    t.add_row("rows scored", f"{n}" + (f"  ({summary['malformed']} malformed, skipped)" if summary["malformed"] else ""))
    t.add_row("passed", f"{summary['passed']}/{n}  ({pct(summary['pass_rate'])})"
              + (f", {summary['no_opinion']} no opinion" if summary["no_opinion"] else ""))
    t.add_row("mean reward", "-" if summary["mean_reward"] is None else f"{summary['mean_reward']:.4f}")
    for label, key in (("reasons", "reasons"), ("errors", "errors")):
        counts = summary[key]  # verifier text as is: no markup, no emoji (`with_unit:ok` is not 👌)
        t.add_row(label, Text(", ".join(f"{k}: {v}" for k, v in counts.items()) if counts else "-"))
    t.add_row("timeouts", str(summary["timeouts"]))
    rate = summary["rows_per_s"]
    t.add_row("speed", f"{summary['elapsed_s']:.2f} s" + (f", {rate:.1f} rows/s" if rate else ""))
    console.print(t)
    rows = summary["malformed_rows"]
    for msg in rows[:MAX_LISTED]:
        console.print(Text.assemble(("malformed", "yellow"), " ", msg), highlight=False, soft_wrap=True)
    if len(rows) > MAX_LISTED:
        console.print(f"... and {len(rows) - MAX_LISTED} more malformed rows (see --summary-json)")
    if summary["exceptions"]:  # rlvr.scoring has logged the first traceback (stderr)
        types_ = ", ".join(f"{k}: {v}" for k, v in summary.get("exception_types", {}).items())
        console.print(f"[red]the verifier raised on {summary['exceptions']} row(s)[/]"
                      + (f" ({types_})" if types_ else "")
                      + ": a bug in verifier code, not a reward of 0. Its first traceback is logged "
                      "above; --summary-json keeps it too.",
                      soft_wrap=True)


# ----------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """Read, score, write, summarise. Returns the exit code (see the module docstring)."""
    import json
    import os

    from rich.console import Console

    from rlvr.io import InputError, atomic_write, write_jsonl
    from rlvr.scoring import score_batch

    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be >= 0, got {args.workers}")
    if args.timeout is not None and args.timeout <= 0:
        raise InputError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if os.path.isdir(args.output):
        raise InputError(f"--output {args.output}: is a directory; give a file path such as {args.output}/scored.jsonl")
    import_plugins(args.imports)
    spec = parse_verifier(args.verifier, parse_options(args.option))
    good, bad = read_rows(args.input, strict=args.strict)
    console = Console(highlight=False, emoji=False)
    console.print(f"rlvr verify: {len(good)} rows from {args.input} with {args.verifier!r}"
                  + (f", {len(bad)} malformed" if bad else ""), soft_wrap=True)
    t0 = time.perf_counter()
    scores = score_batch(spec, [c for _, c, _ in good], [s for _, _, s in good], workers=args.workers,
                         timeout_s=args.timeout, progress=False if args.no_progress else "rich",
                         max_exception_fraction=None) if good else []
    elapsed = time.perf_counter() - t0
    out_rows = []
    for (row, _, _), score in zip(good, scores, strict=True):
        out = {k: v for k, v in row.items() if k not in OUTPUT_FIELDS}
        out.update(score.to_dict())
        out_rows.append(out)
    write_jsonl(args.output, out_rows)
    summary = summarize(scores, bad, elapsed, getattr(scores, "report", None))
    summary.update(input=args.input, output=args.output, verifier=args.verifier)
    if args.summary_json:
        with atomic_write(args.summary_json) as f:
            json.dump(summary, f, indent=2)
    render_summary(summary, console)
    console.print(f"wrote {len(out_rows)} scored rows to {args.output}", soft_wrap=True)
    return 1 if summary["exceptions"] else 0
