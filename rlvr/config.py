"""Config: one tree of dataclasses, read from YAML files and overridden by dotted keys.

    rlvr train run.yaml algo.clip_high=0.28 model.path=/x

`load_config(cls, path, overrides)` reads the YAML file (and the files it ``extends``), lays the
dotted overrides on top, and builds `cls` with every value checked against the dataclass
annotations (int, float, bool, str, Path, Optional, Literal, Enum, list/tuple[...], dict[str, ...],
nested dataclasses). Every bad value is reported with its file and line (or the override that set
it), the dotted key, the expected type and the value; an unknown key also gets the closest valid
key. `to_dict`, `dump_yaml`, `save_resolved` and `print_config` write the resolved tree back out;
a saved ``config.yaml`` loads back to an equal config.

Merge rules: a nested dataclass given in YAML is merged over the field's default (keys you leave
out keep their defaults). A dict field given whole (``weights: {math: 1}`` in YAML, or the override
``'weights={math: 1}'``) replaces the default and whatever the file held; dotted keys into it
(``weights.format=0.1``) update it. Lists are always replaced whole.

Errors look like ``run.yaml:4: unknown key 'clip_hihg' (at 'algo.clip_hihg'); did you mean
'algo.clip_high'?`` and ``override 'steps=ten': steps: expected int, got str 'ten'``; all problems
are reported at once in one `ConfigError`. Guide: docs/config.md.

What this module does not do: define the trainers' config tree (each trainer module defines its
dataclasses and calls `load_config`), or parse ``sys.argv`` (that is `rlvr.cli`'s job).

Try it::

    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Algo:
    ...     clip_high: float = 0.2
    >>> @dataclass
    ... class Run:
    ...     algo: Algo = field(default_factory=Algo)
    ...     steps: int = 10
    >>> load_config(Run, None, ["algo.clip_high=0.28", "steps=5"])
    Run(algo=Algo(clip_high=0.28), steps=5)
"""


import collections.abc as cabc
import contextlib
import copy
import dataclasses
import difflib
import enum
import functools
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from rlvr._config_tree import _from_python, _merge, _Node, _parse_override, _plain, _read_yaml, _unwhole
from rlvr.io import InputError, atomic_write

__all__ = [
    "ConfigError",
    "add_config_arguments",
    "build_config",
    "config_keys",
    "dump_yaml",
    "from_dict",
    "load_config",
    "load_config_from_args",
    "print_config",
    "save_resolved",
    "split_config_args",
    "to_dict",
    "where_set",
]

T = TypeVar("T")
_MISSING = dataclasses.MISSING
_INVALID = object()  # a value that failed to coerce (its error is already recorded)


class ConfigError(InputError):
    """One or more bad config values; each problem names its file:line (or override) and key."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"{len(self.problems)} problems in the config:\n{lines}")


# ----------------------------------------------------------------------------- types
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as e:
        raise TypeError(f"config class {cls.__qualname__}: cannot resolve an annotation ({e}); "
                        "define config dataclasses at module level") from e


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any value"
    if _is_union(tp):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(tp, "__name__", str(tp))


def _describe(node: _Node) -> str:
    if node.kind == "map":
        return "a mapping"
    if node.kind == "seq":
        return "a list"
    v = node.value
    return "null" if v is None else f"{type(v).__name__} {v!r}"


def config_keys(cls: type) -> list[str]:
    """Every dotted key of a config class, nested dataclasses expanded (``['algo.clip_high', ...]``)."""
    out: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = _hints(cls)[f.name]
        inner = [a for a in typing.get_args(tp) if a is not type(None)] if _is_union(tp) else [tp]
        sub = next((a for a in inner if dataclasses.is_dataclass(a)), None)
        out.append(f.name)
        out.extend(f"{f.name}.{k}" for k in (config_keys(sub) if sub else []))
    return out


# ----------------------------------------------------------------------------- building
def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_key(key: str, node: _Node, path: str, valid: list[str], root: type) -> str:
    full = _join(path, key)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if "." in key and full in config_keys(root):
        head, _, rest = key.partition(".")
        hint = f"; dotted keys are for the command line: in YAML write it nested ({head}: {{{rest}: ...}})"
    elif close:
        hint = f"; did you mean {_join(path, close[0])!r}?"
    else:  # maybe it belongs elsewhere in the tree (``clip_high=0.3`` for ``algo.clip_high``)
        keys = config_keys(root)
        by_last = {k.rsplit(".", 1)[-1]: k for k in keys}
        close = difflib.get_close_matches(key, list(by_last), n=1, cutoff=0.75)
        hint = f"; did you mean {by_last[close[0]]!r}?" if close else f"; valid keys here: {', '.join(valid)}"
    at = f" (at {full!r})" if path else ""
    return f"{node.where}: unknown key {key!r}{at}{hint}"


def _build(cls: type, node: _Node, path: str, base: Any, problems: list[str], root: type) -> Any:
    """Build dataclass `cls` from a map node; unset fields come from `base` (an instance) or defaults."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    before = len(problems)
    for key in node.value:
        if key not in names:
            problems.append(_unknown_key(key, node.value[key], path, names, root))
    kwargs: dict[str, Any] = {}
    for f in fields:
        here = _join(path, f.name)
        current = getattr(base, f.name) if base is not None else _default(f)
        if f.name in node.value:
            kwargs[f.name] = _coerce(_hints(cls)[f.name], node.value[f.name], here, current, problems, root)
        elif current is not _MISSING:
            kwargs[f.name] = copy.deepcopy(current)
        elif dataclasses.is_dataclass(_hints(cls)[f.name]):  # report its own required keys
            empty = _Node({}, node.where, "map")
            kwargs[f.name] = _build(_hints(cls)[f.name], empty, here, None, problems, root)
        else:
            how = "in the YAML file" + ("" if "[" in here else f" or with {here}=...")
            problems.append(f"{node.where}: {here}: required (no default); set it {how}")
    if len(problems) > before:
        return _INVALID
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # a __post_init__ check
        # point at the keys the message names (where they were set), else at the section
        named = [k for k in (node.value if node.kind == "map" else {}) if re.search(rf"\b{re.escape(k)}\b", str(e))]
        where = node.value[named[0]].where if named else node.where
        also = [k for k in named[1:] if not str(node.value[k].where).startswith("preset ")]  # the user's keys
        keys = f" ({', '.join(f'{k} set at {node.value[k].where}' for k in also)})" if also else ""
        problems.append(f"{where}: {path or cls.__name__}: {e}{keys}")
        return _INVALID


def _default(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


def _coerce(tp: Any, node: _Node, path: str, current: Any, problems: list[str], root: type) -> Any:
    """Check and convert one raw value to annotation `tp`; record a problem and return _INVALID if not."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def bad(extra: str = "") -> Any:
        problems.append(f"{node.where}: {path}: expected {_type_name(tp)}, got {_describe(node)}{extra}")
        return _INVALID

    if tp is Any:
        return _plain(node)
    if _is_union(tp):
        if node.kind == "scalar" and node.value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for opt in options:
            scratch: list[str] = []
            out = _coerce(opt, node, path, current, scratch, root)
            if not scratch:
                return out
            if len(options) == 1 and node.kind != "scalar":  # the inner problem is more precise
                problems.extend(scratch)
                return _INVALID
        return bad()
    if dataclasses.is_dataclass(tp):
        if node.kind != "map":
            return bad()
        node = _unwhole(node)  # `algo={clip_high: 0.3}` still merges over the file's algo:
        return _build(tp, node, path, current if isinstance(current, tp) else None, problems, root)
    if origin in (list, tuple, set, frozenset, cabc.Sequence) or tp in (list, tuple):
        if node.kind != "seq":
            return bad()
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(node.value):
                return bad(f" of length {len(node.value)} (needs {len(args)})")
            items = [_coerce(a, n, f"{path}[{i}]", _MISSING, problems, root)
                     for i, (a, n) in enumerate(zip(args, node.value))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(item_tp, n, f"{path}[{i}]", _MISSING, problems, root) for i, n in enumerate(node.value)]
        if any(x is _INVALID for x in items):
            return _INVALID
        return (origin if origin in (tuple, set, frozenset) else list)(items)
    if origin in (dict, cabc.Mapping) or tp is dict:
        if node.kind != "map":
            return bad()
        val_tp = args[1] if len(args) == 2 else Any
        out = {k: _coerce(val_tp, n, _join(path, k), _MISSING, problems, root) for k, n in node.value.items()}
        if any(v is _INVALID for v in out.values()):
            return _INVALID
        if node.implicit and isinstance(current, Mapping):
            out = {**copy.deepcopy(dict(current)), **out}
        return out
    if node.kind != "scalar":
        return bad()
    return _coerce_scalar(tp, node, bad)


def _coerce_scalar(tp: Any, node: _Node, bad: Callable[..., Any]) -> Any:
    v = node.value
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        for c in choices:
            if type(v) is type(c) and v == c:
                return c
            if isinstance(c, str) and node.text is not None and node.text == c:
                return c
        close = difflib.get_close_matches(str(v), [str(c) for c in choices], n=1)
        return bad(f"; did you mean {close[0]!r}?" if close else "")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for m in tp:
            if v == m.value or v == m.name:
                return m
        return bad()
    if tp is bool:
        return v if isinstance(v, bool) else bad()
    if tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        number = _number(v)
        return int(number) if number is not None and number.is_integer() else bad()
    if tp is float:
        number = _number(v)
        return number if number is not None else bad()
    if tp in (str, Path):
        if isinstance(v, str):
            return tp(v)
        if v is not None and not isinstance(v, bool) and node.text is not None:
            return tp(node.text)  # a plain scalar YAML read as a number or date: keep it as typed
        if isinstance(v, bool) and node.text is not None:
            return tp(node.text)
        return bad()
    if isinstance(tp, type):
        return v if isinstance(v, tp) else bad()
    return v


def _number(v: Any) -> float | None:
    """A float from an int, a float, or a numeric string (PyYAML reads ``1e-6`` as a string)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip().replace("_", ""))
        except ValueError:
            return None
    return None


# ----------------------------------------------------------------------------- public API
def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "<dict>") -> T:
    """Build and check `cls` from a plain dict (same rules and errors as `load_config`)."""
    problems: list[str] = []
    cfg = _build(cls, _from_python(to_dict(dict(data)), where), "", None, problems, cls)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    presets: Callable[[str], Mapping[str, Any]] | None = None,
    preset_key: str = "preset",
) -> T:
    """Read `path` (YAML; may be None), apply dotted `overrides`, and build a checked `cls`.

    A top-level ``extends: base.yaml`` (or a list) in the file loads those files first (paths
    relative to the file) and merges this one over them. With `presets`, the value of the
    top-level key `preset_key` (from the file or an override) is passed to `presets(name)`, whose
    mapping is laid under the file and the overrides (they win).

    Raises ConfigError listing every problem, each with file:line (or the override) and key.
    """
    problems: list[str] = []
    tree = _read_yaml(Path(path), problems) if path is not None else _Node({}, "(no config file)", "map")
    if tree is None:
        raise ConfigError(problems)
    for text in overrides:
        layer = _parse_override(text, problems)
        if layer is not None:
            tree = _merge(tree, layer)
    if problems:  # YAML-level problems (duplicate keys, bad overrides) first
        raise ConfigError(problems)
    return build_config(cls, tree, presets=presets, preset_key=preset_key)


def build_config(
    cls: type[T],
    tree: Any,
    *,
    presets: Callable[[str], Mapping[str, Any]] | None = None,
    preset_key: str = "preset",
) -> T:
    """Build a checked `cls` from an already read and merged tree (what `load_config` does after
    reading the files and overrides; `rlvr.pipeline` calls it on each stage's part of its file).

    Raises ConfigError listing every problem, sorted by file and line.
    """
    if presets is not None and preset_key in tree.value:
        pnode = tree.value[preset_key]
        if isinstance(pnode.value, str):
            try:
                chosen = to_dict(presets(pnode.value))
                base = _from_python(chosen, f"preset {pnode.value!r} (chosen at {pnode.where})")
            except (KeyError, ValueError) as e:
                raise ConfigError([f"{pnode.where}: {preset_key}: {e.args[0] if e.args else e}"]) from None
            tree = _merge(base, tree)
    problems: list[str] = []
    cfg = _build(cls, tree, "", None, problems, cls)
    if problems:
        raise ConfigError(sorted(problems, key=_file_order))
    with contextlib.suppress(AttributeError, TypeError):  # a slots class just goes without
        object.__setattr__(cfg, "_rlvr_tree", tree)  # for `where_set`: later checks name file:line too
    return cfg


def where_set(cfg: Any, dotted: str | Sequence[str]) -> str:
    """Where the key `dotted` of a loaded config was set: ``run.yaml:12``, ``override 'a=1'``, or the
    nearest enclosing key's place; ``config`` for a config built in Python."""
    node = getattr(cfg, "_rlvr_tree", None)
    if node is None:
        return "config"
    for part in dotted.split(".") if isinstance(dotted, str) else dotted:
        if node.kind != "map" or part not in node.value:
            break
        node = node.value[part]
    return node.where


def _file_order(problem: str) -> tuple[int, str, int]:
    """Sort problems by file and line; override and other problems after, in their order."""
    head = problem.split(": ", 1)[0]
    file, _, line = head.rpartition(":")
    return (0, file, int(line)) if file and line.isdigit() else (1, "", 0)


def to_dict(cfg: Any) -> Any:
    """The config as plain YAML/JSON-able data (Paths and Enums become their str/value)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}
    if isinstance(cfg, enum.Enum):
        return to_dict(cfg.value)
    if isinstance(cfg, Path):
        return str(cfg)
    if isinstance(cfg, Mapping):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple, set, frozenset)):
        return [to_dict(v) for v in cfg]
    return cfg


def dump_yaml(cfg: Any) -> str:
    """The resolved config as YAML text, in field order; `load_config` reads it back equal."""
    from rlvr import __version__

    head = f"# {type(cfg).__name__}, resolved by rlvr {__version__}\n"
    return head + yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True, default_flow_style=False)


def save_resolved(cfg: Any, out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config to ``out_dir/config.yaml`` atomically; returns the path."""
    target = Path(out_dir) / name
    with atomic_write(target) as f:
        f.write(dump_yaml(cfg))
    return target


def print_config(cfg: Any, console: Any = None, title: str | None = None) -> None:
    """Print the resolved config as highlighted YAML in a panel (rich)."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.syntax import Syntax

    console = console or Console()
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True).rstrip()
    console.print(Panel(Syntax(text, "yaml", background_color="default"), title=title or type(cfg).__name__,
                        title_align="left", expand=False))


def split_config_args(tokens: Sequence[str]) -> tuple[str | None, list[str]]:
    """Split CLI tokens into (config file or None, dotted overrides): ``key=value`` tokens are overrides.

    >>> split_config_args(["run.yaml", "algo.clip_high=0.28"])
    ('run.yaml', ['algo.clip_high=0.28'])
    """
    paths = [t for t in tokens if "=" not in t]
    if len(paths) > 1:
        raise ConfigError([f"expected at most one config file, got {paths}; overrides look like key=value"])
    return (paths[0] if paths else None), [t for t in tokens if "=" in t]


def add_config_arguments(parser: Any) -> None:
    """Give an argparse (sub)parser the ``[CONFIG.yaml] [key=value ...]`` positional tokens."""
    parser.add_argument("config", nargs="*", metavar="CONFIG.yaml | key=value",
                        help="a YAML config file, then dotted overrides such as algo.clip_high=0.28")


def load_config_from_args(cls: type[T], args: Any, **kwargs: Any) -> T:
    """`load_config` on the tokens added by `add_config_arguments` (``args.config``)."""
    path, overrides = split_config_args(getattr(args, "config", None) or [])
    return load_config(cls, path, overrides, **kwargs)
