"""Cross-check: rlvr's math verifier against reasoning-gym's own `score_answer` on its arithmetic
generators, on the gold answers and on perturbed ones.

For each generator it draws `--n` problems (seed 0, default configs) and builds answer variants from
each gold: the gold itself; value-preserving rewrites (thousands separators, a trailing ".0",
scientific notation, LaTeX fractions, reordered factors, upper-case hex); and wrong answers (last
digit changed, sign flipped, a rounded decimal, an unreduced fraction). Each variant has the truth
this bench assigns it: "same value" or "wrong value" (the value the question asks for), and a
note where the question also demands a form (lowest terms, hexadecimal, 3 significant figures).
Both checkers see the same answer text: reasoning-gym's `score_answer(text, entry)` (pass = score
1.0; one that raises counts as a fail, as rlvr's ``reasoning_gym`` verifier scores it), and ``get_verifier("math")("<answer>text</answer>", Sample(answer=gold))``.

It prints one markdown table row per (generator, variant) with the pass counts of each side and the
disagreements, with one example each, then a summary line. It asserts nothing.

Try it::

    .venv/bin/python bench/gym_crosscheck.py --n 100
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from collections.abc import Callable
from fractions import Fraction

GENERATORS = ["chain_sum", "basic_arithmetic", "decimal_arithmetic", "decimal_chain_sum", "products", "gcd", "lcm",
              "count_bits", "power_function", "fraction_simplification", "prime_factorization", "complex_arithmetic",
              "bitwise_arithmetic"]
_INT = re.compile(r"-?\d+")
_DEC = re.compile(r"-?\d+\.\d+")


def _bump_last_digit(s: str) -> str | None:
    idx = max((i for i, ch in enumerate(s) if ch.isdigit()), default=None)
    if idx is None:
        return None
    return s[:idx] + str((int(s[idx]) + 1) % 10) + s[idx + 1:]


def _thousands(s: str) -> str | None:
    if not _INT.fullmatch(s) or len(s.lstrip("-")) < 5:
        return None
    return f"{int(s):,}"


def _negate(s: str) -> str | None:
    if _INT.fullmatch(s) or _DEC.fullmatch(s):
        return None if float(s) == 0 else (s[1:] if s.startswith("-") else "-" + s)
    return None


def _round2(s: str) -> str | None:
    if not _DEC.fullmatch(s) or len(s.split(".")[1]) < 4:
        return None
    r = f"{float(s):.2f}"
    return None if Fraction(r) == Fraction(s) else r


def _frac_parts(s: str) -> tuple[int, int] | None:
    m = re.search(r"(-?\d+)\}\{(\d+)", s) or re.fullmatch(r"(-?\d+)/(\d+)", s)
    return (int(m.group(1)), int(m.group(2))) if m else None


# variant -> (build from gold, truth, note)
VARIANTS: dict[str, tuple[Callable[[str], str | None], str, str]] = {
    "gold": (lambda g: g, "same value", ""),
    "thousands_sep": (_thousands, "same value", "12,345 for 12345"),
    "trailing_.0": (lambda g: g + ".0" if _INT.fullmatch(g) else None, "same value", "42.0 for 42"),
    "sci_notation": (lambda g: f"{Fraction(g).numerator / Fraction(g).denominator:e}" if _DEC.fullmatch(g) else None,
                     "same value (to 6 s.f.)", "1.234568e+03 style; exact only when 6 s.f. hold the value"),
    "plain_fraction": (lambda g: "{}/{}".format(*_frac_parts(g)) if _frac_parts(g) and "\\" in g else None, "same value", "79/173 for $\\dfrac{79}{173}$"),
    "unreduced_fraction": (lambda g: "{}/{}".format(*(2 * x for x in _frac_parts(g))) if _frac_parts(g) else None,
                           "same value", "the question asks for lowest terms"),
    "reordered_factors": (lambda g: " × ".join(reversed(g.split(" × "))) if " × " in g else None, "same value", "433 × 2 for 2 × 433"),
    "star_factors": (lambda g: "*".join(g.split(" × ")) if " × " in g else None, "same value", "2*433 for 2 × 433"),
    "complex_ints": (lambda g: g.replace(".0 ", " ").replace(".0i", "i") if g.endswith("i") and ".0" in g else None, "same value", "48 + 36i for 48.0 + 36.0i"),
    "hex_upper": (lambda g: "0x" + g[2:].upper() if g.startswith("0x") and any(c.isalpha() for c in g[2:]) else None,
                  "same value", "0x3EB2 for 0x3eb2"),
    "hex_as_decimal": (lambda g: str(int(g, 16)) if g.startswith(("0x", "-0x")) else None, "same value", "the question asks for hexadecimal"),
    "last_digit+1": (_bump_last_digit, "wrong value", ""),
    "negated": (_negate, "wrong value", ""),
    "rounded_2dp": (_round2, "wrong value", "the question may accept a tolerance"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="problems per generator")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import reasoning_gym as rg

    from rlvr.verifiers import Sample, get_verifier

    math_v = get_verifier("math")
    t0 = time.perf_counter()
    print("| generator | variant | truth | n | math passes | reasoning-gym passes | disagree | example (answer: math / rg) |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    totals: dict[str, int] = defaultdict(int)
    for name in GENERATORS:
        ds = rg.create_dataset(name, size=args.n, seed=args.seed)
        for variant, (build, truth, note) in VARIANTS.items():
            n = m_pass = r_pass = disagree = raised = 0
            example = ""
            for entry in ds:
                gold = entry["answer"]
                try:
                    text = build(gold)
                except (ValueError, ZeroDivisionError, TypeError):
                    text = None
                if text is None or (variant != "gold" and text == gold):
                    continue
                m = bool(math_v(f"<answer>{text}</answer>", Sample(answer=gold)).passed)
                try:
                    r = float(ds.score_answer(text, entry)) >= 1.0
                except Exception:  # prime_factorization raises on "139.0": rlvr's verifier scores that 0
                    r, raised = False, raised + 1
                n, m_pass, r_pass = n + 1, m_pass + m, r_pass + r
                if m != r:
                    disagree += 1
                    example = example or f"`{text}` for `{gold}`: {'pass' if m else 'fail'} / {'pass' if r else 'fail'}"
            if n:
                truth_cell = truth + (f" ({note})" if note else "")
                rg_cell = f"{r_pass}" + (f" ({raised} raised)" if raised else "")
                print(f"| {name} | {variant} | {truth_cell} | {n} | {m_pass} | {rg_cell} | {disagree} | {example} |")
                totals["rows"] += n
                totals["disagree"] += disagree
    print(f"\n{totals['rows']} answers checked, {totals['disagree']} disagreements, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
