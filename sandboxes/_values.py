"""Plain-data values of the grading harness: `encode`/`decode` (tagged JSON), `canon`, `norm_ws`, `digest`.

Both sides use this one implementation: the host (`rlvr.verifiers.code`) imports it, and the host
ships this file's source into the sandbox ahead of `rlvr.sandboxes.harness` (see
`rlvr.sandboxes.harness.harness_source`), where it runs on a bare python3 >= 3.8 with only the stdlib.
So: no ``from __future__`` import, no rlvr import, nothing but the stdlib.

What it does not do: compare (the host does) or trust its input (`decode` validates every tag).

Try it::

    >>> from rlvr.sandboxes._values import canon, decode, encode
    >>> decode(encode((1, {2: b"x"}))) == (1, {2: b"x"}), canon(2) == canon(2.0), canon(True) == canon(1)
    (True, True, False)
"""

import json
import math


def encode(v, depth=0):
    """Tagged JSON of builtin primitives; TypeError for any other type (subclasses included)."""
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(v)
    if v is None or t is bool or t is int or t is float or t is str:
        return v
    if t is list:
        return [encode(x, depth + 1) for x in v]
    if t is tuple:
        return {"t": [encode(x, depth + 1) for x in v]}
    if t is dict:
        return {"d": [[encode(k, depth + 1), encode(x, depth + 1)] for k, x in v.items()]}
    if t is set or t is frozenset:
        return {"s": [encode(x, depth + 1) for x in v]}
    if t is bytes:
        return {"b": v.hex()}
    if t is complex:
        return {"c": [v.real, v.imag]}
    raise TypeError(f"return type {t.__name__} is not a builtin primitive or container")


def decode(j, depth=0):
    """Inverse of `encode`, validating every tag (the input comes from an untrusted child)."""
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(j)
    if j is None or t is bool or t is int or t is float or t is str:
        return j
    if t is list:
        return [decode(x, depth + 1) for x in j]
    if t is dict and len(j) == 1:
        ((tag, x),) = j.items()
        if tag == "t" and type(x) is list:
            return tuple(decode(y, depth + 1) for y in x)
        if tag == "d" and type(x) is list and all(type(p) is list and len(p) == 2 for p in x):
            return {decode(k, depth + 1): decode(y, depth + 1) for k, y in x}
        if tag == "s" and type(x) is list:
            return frozenset(decode(y, depth + 1) for y in x)
        if tag == "b" and type(x) is str:
            return bytes.fromhex(x)
        if tag == "c" and type(x) is list and len(x) == 2 and all(type(y) in (int, float) for y in x):
            return complex(x[0], x[1])
    raise ValueError("malformed value")


def _c(v, tl):
    t = type(v)
    if v is None:
        return ["0"]
    if t is bool:
        return ["B", v]
    if t is int:
        return ["N", str(v)]
    if t is float:
        return ["N", str(int(v))] if math.isfinite(v) and v.is_integer() else ["F", repr(v)]
    if t is complex:
        return (
            ["N", str(int(v.real))]
            if v.imag == 0 and math.isfinite(v.real) and v.real.is_integer()
            else ["C", _c(v.real, tl), _c(v.imag, tl)]
        )
    if t is str:
        return ["S", v]
    if t is bytes:
        return ["Y", v.hex()]
    if t is list or (t is tuple and tl):
        return ["L", [_c(x, tl) for x in v]]
    if t is tuple:
        return ["T", [_c(x, tl) for x in v]]
    if t is dict:
        items = [[_c(k, tl), _c(x, tl)] for k, x in v.items()]
        return ["D", sorted(items, key=lambda p: json.dumps(p[0]))]
    if t is set or t is frozenset:
        return ["E", sorted((_c(x, tl) for x in v), key=json.dumps)]
    raise TypeError(f"cannot canonicalise {t.__name__}")


def canon(v, tuples_as_lists=False):
    """One string per equality class: bool != int, int == float by value (2 == 2.0, as in Python),
    list != tuple (unless `tuples_as_lists`), dict and set order ignored. NaN equals NaN here."""
    return json.dumps(_c(v, tuples_as_lists), separators=(",", ":"))


def norm_ws(text):
    """Whitespace-tolerant form of program output: each line's whitespace runs collapsed and trimmed,
    blank lines at the start and end dropped."""
    lines = [" ".join(ln.split()) for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def digest(text):
    import hashlib  # here, not at the top: most jobs never need it and it costs an OpenSSL load

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
