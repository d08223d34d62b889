"""Raw config trees for `rlvr.config`: YAML files and dotted overrides, with where each value came from.

A raw tree is made of `_Node`s (maps, sequences, scalars), each carrying ``where`` (``run.yaml:12``
or ``override 'a.b=1'``) so that `rlvr.config` can name the file and line of a bad value. This
module reads YAML (``extends:`` included), parses overrides and merges trees; it knows nothing of
dataclasses or types. Problems are appended to a ``problems`` list, never raised.

Private: use `rlvr.config.load_config`.
"""

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml


@dataclasses.dataclass
class _Node:
    """A raw config value with where it came from (``run.yaml:12`` or ``override 'a.b=1'``)."""

    value: Any  # dict[str, _Node] for maps, list[_Node] for sequences, a Python scalar otherwise
    where: str
    kind: str = "scalar"  # "map" | "seq" | "scalar"
    text: str | None = None  # a plain scalar as typed, so `name: 1.10` gives the str field "1.10"
    implicit: bool = False  # a map made by a dotted override path (dict fields then update, not replace)
    whole: bool = False  # a map given whole by an override (``a.b={x: 1}``): a dict field takes it as is
    under: "_Node | None" = None  # for a `whole` map, what it replaced (a dataclass section merges over it)


# ----------------------------------------------------------------------------- raw trees
def _from_yaml(node: yaml.Node, where: Callable[[yaml.Mark], str], problems: list[str]) -> _Node:
    loader = yaml.SafeLoader("")
    here = where(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<: *base)
        out: dict[str, _Node] = {}
        for knode, vnode in node.value:
            kwhere = where(knode.start_mark)
            key = loader.construct_object(knode, deep=True)
            if not isinstance(key, str):
                problems.append(f"{kwhere}: key {key!r} must be a string (quote it: '{knode.value}')")
                continue
            if key in out:
                problems.append(f"{kwhere}: duplicate key {key!r} (first at {out[key].where})")
                continue
            child = _from_yaml(vnode, where, problems)
            child.where = kwhere
            out[key] = child
        return _Node(out, here, "map")
    if isinstance(node, yaml.SequenceNode):
        return _Node([_from_yaml(n, where, problems) for n in node.value], here, "seq")
    value = loader.construct_object(node, deep=True)
    return _Node(value, here, text=node.value if node.style is None else None)


def _from_python(obj: Any, where: str) -> _Node:
    if isinstance(obj, _Node):
        return obj
    if isinstance(obj, Mapping):
        return _Node({str(k): _from_python(v, where) for k, v in obj.items()}, where, "map")
    if isinstance(obj, (list, tuple)):
        return _Node([_from_python(v, where) for v in obj], where, "seq")
    return _Node(obj, where)


def _merge(base: _Node | None, top: _Node) -> _Node:
    """Deep-merge maps (`top` wins); anything else is replaced by `top`."""
    if top.whole and top.kind == "map" and base is not None and base.kind == "map":
        return dataclasses.replace(top, under=base if top.under is None else _merge(base, top.under))
    if base is None or base.kind != "map" or top.kind != "map":
        return top
    out = dict(base.value)
    for k, v in top.value.items():
        out[k] = _merge(out.get(k), v)
    return _Node(out, base.where, "map", implicit=base.implicit and top.implicit)


SHIPPED = Path(__file__).resolve().parent / "configs"


def locate(path: Path) -> Path:
    """`path` if it exists, else the shipped config it names, so the documented commands work from
    any directory and after a pip install: ``rlvr/configs/ppo_demo.yaml``, ``ppo_demo.yaml``,
    ``ppo_demo``, ``pipelines/sft_dpo.yaml`` and ``sft_dpo`` all find the file in `SHIPPED`."""
    return path if path.exists() else (shipped(path.as_posix()) or path)


def shipped(text: str) -> Path | None:
    """The shipped config named by `text` (see `locate`), or None."""
    rel = text.split("rlvr/configs/", 1)[1] if "rlvr/configs/" in text else text
    if Path(rel).is_absolute():
        return None
    for name in [rel] if rel.endswith((".yaml", ".yml")) else [rel, rel + ".yaml"]:
        for candidate in (SHIPPED / name, SHIPPED / "pipelines" / name):
            if candidate.is_file():
                return candidate
    return None


def _read_yaml(path: Path, problems: list[str], seen: tuple[Path, ...] = ()) -> _Node | None:
    """One YAML file as a raw tree, with the files it ``extends`` merged underneath (None: unreadable).
    A missing path falls back to a shipped config of that name (`locate`)."""
    path = locate(path)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"{label}: config file not found")
        return None
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{label}: cannot read config file: {e}")
        return None
    try:
        doc = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problems.append(f"{label}{line}: invalid YAML: {getattr(e, 'problem', None) or e}")
        return None
    if doc is None:
        return _Node({}, f"{label}:1", "map")
    tree = _from_yaml(doc, lambda m: f"{label}:{m.line + 1}", problems)
    if tree.kind != "map":
        problems.append(f"{label}:{doc.start_mark.line + 1}: expected a mapping of keys at the top level")
        return None
    ext = tree.value.pop("extends", None)
    if ext is None:
        return tree
    merged: _Node | None = None
    for b in ext.value if ext.kind == "seq" else [ext]:
        if not isinstance(b.value, str):
            problems.append(f"{b.where}: 'extends' takes a file path or a list of them")
            return None
        bpath = (path.parent / b.value).resolve()
        if not bpath.exists():  # `extends: ppo_demo.yaml` from a user's own file: the shipped one
            bpath = (shipped(b.value) or bpath).resolve()
        if bpath in seen or bpath == path.resolve():
            problems.append(f"{b.where}: 'extends' cycle through {b.value}")
            return None
        base = _read_yaml(bpath, problems, (*seen, path.resolve()))
        if base is None:
            return None
        merged = base if merged is None else _merge(merged, base)
    return _merge(merged, tree)


def _parse_override(text: str, problems: list[str]) -> _Node | None:
    """``a.b=[1,2]`` -> the raw tree ``{a: {b: [1, 2]}}``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    label = f"override {text!r}"
    if not sep or not all(p.strip() for p in parts):
        problems.append(f"{label}: expected key.path=value (e.g. algo.clip_high=0.28)")
        return None
    try:
        doc = yaml.compose(raw, Loader=yaml.SafeLoader)
        node = _from_yaml(doc, lambda m: label, problems) if doc is not None else _Node("", label, text="")
    except yaml.YAMLError:  # not YAML (e.g. "a: b: c"): keep the text, a str field will take it
        node = _Node(raw, label, text=raw)
    if node.kind == "scalar" and node.text is not None:
        node.text = raw.strip()
    node.whole = node.kind == "map"  # `task.verifiers={math: 1}` replaces the file's whole mapping
    for part in reversed(parts):
        node = _Node({part.strip(): node}, label, "map", implicit=True)
    return node


def _unwhole(node: _Node) -> _Node:
    """A `whole` override map laid over what it replaced: for dataclass sections, which always merge."""
    if not node.whole or node.under is None:
        return node
    return _merge(node.under, dataclasses.replace(node, whole=False, under=None))


def _plain(node: _Node) -> Any:
    if node.kind == "map":
        return {k: _plain(v) for k, v in node.value.items()}
    if node.kind == "seq":
        return [_plain(v) for v in node.value]
    return node.value
