"""List the algorithm presets, or show the exact objective one resolves to (with overrides).

    rlvr presets list
    rlvr presets show dapo
    rlvr presets show grpo std_normalize=false clip_high=0.28     # see what an override changes
    rlvr presets show ppo --json                                   # the fields, as JSON

What it does not do: train; the objective printed is the one `rlvr train` uses for that preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="the preset names with a one-line summary")
    show = sub.add_parser("show", help="the resolved objective of one preset")
    show.add_argument("name", help="preset name (see 'rlvr presets list')")
    show.add_argument(
        "overrides", nargs="*", metavar="FIELD=VALUE", help="override fields, e.g. clip_high=0.28"
    )
    show.add_argument("--json", action="store_true", help="print the fields as JSON instead")


def _parse_value(field: dataclasses.Field, raw: str, where: str):
    """Turn 'raw' into the field's type: bool, int, float, str or None ('none'/'null')."""
    low = raw.strip().lower()
    if low in ("none", "null"):
        return None
    kind = str(field.type).split("|")[0].strip()  # "float | None" -> "float"
    if kind == "bool":
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{where}: {field.name} expects true/false, got {raw!r}")
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise ValueError(f"{where}: {field.name} expects {kind}, got {raw!r}") from None
    return raw


def run(args: argparse.Namespace) -> int:
    from rlvr.io import InputError
    from rlvr.presets import PRESETS, AlgoConfig, describe, get_preset, with_overrides

    if args.action == "list":
        width = max(map(len, PRESETS))
        for name, cfg in PRESETS.items():
            print(f"{name:<{width}}  {cfg.summary}")
        return 0
    try:
        cfg = get_preset(args.name)
    except KeyError as e:
        raise InputError(e.args[0]) from None
    fields = {f.name: f for f in dataclasses.fields(AlgoConfig)}
    changes = {}
    for token in args.overrides:
        where = f"override {token!r}"
        key, sep, raw = token.partition("=")
        key = key.removeprefix("algo.")
        if not sep or key not in fields:
            raise InputError(f"{where}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        try:
            changes[key] = _parse_value(fields[key], raw, where)
        except ValueError as e:
            raise InputError(str(e)) from None
    try:
        cfg = with_overrides(cfg, **changes)
    except ValueError as e:
        raise InputError(str(e)) from None
    print(json.dumps(dataclasses.asdict(cfg), indent=2) if args.json else describe(cfg))
    return 0
