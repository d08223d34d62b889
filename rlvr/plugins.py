"""User code by file or module: ``path/to/file.py:name``, ``package.module:name`` and ``--import``.

Anywhere rlvr takes a verifier or a template name, a reference to your own code works too::

    task:
      verifiers: {math: 1.0, my_rewards.py:has_units: 0.5}
      options: {template: prompts.py:my_template}

    rlvr train run.yaml --import my_verifiers          # a module on the path, or ./my_verifiers.py
    rlvr eval --model runs/x/final --task arithmetic --import ./plugins/rewards.py

- `load_object("file.py:name")` imports the file (once per resolved path, under a stable module
  name) and returns ``name`` from it; ``"pkg.mod:name"`` imports the module. Relative paths are
  read from the current directory.
- `import_targets(["my_verifiers", "x/rewards.py"])` imports modules or files so that their
  ``@register_verifier`` / ``@register_template`` / ``@register_task`` decorators run. The targets
  are also put in the environment variable ``RLVR_IMPORTS``, so scoring worker processes import
  them before resolving a name they do not know.
- `FunctionVerifier(fn)` wraps a plain ``(completion, sample) -> float | bool | Score`` function
  into a verifier: a number becomes ``Score(reward, passed=reward >= pass_threshold)``; anything
  else raises (the scorer then records the item as an ``exception``, like any verifier bug). It
  pickles (through cloudpickle when installed), so lambdas and notebook functions can go to
  scoring workers with the same deadlines as registered verifiers.

What it does not do: decide when a name is needed (the verifier, template and task registries
call `load_object` for names containing ``:``), or sandbox user code (it runs in your process).

Try it::

    >>> is_reference("rewards.py:exact"), is_reference("math")
    (True, False)
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rlvr.io import InputError

__all__ = ["FunctionVerifier", "PluginError", "import_from_env", "import_targets", "is_reference", "load_object"]

ENV_VAR = "RLVR_IMPORTS"


class PluginError(InputError):
    """A file or module reference that cannot be loaded (missing file, missing name, import error)."""


def is_reference(text: str) -> bool:
    """True for ``file.py:name`` and ``pkg.module:name`` (a registered name has no colon)."""
    if not isinstance(text, str) or text.count(":") != 1:
        return False
    left, right = text.rsplit(":", 1)
    return bool(left.strip()) and right.isidentifier()


def _module_from_file(path: Path) -> Any:
    """Import the .py file at `path` once, under a name stable for that resolved path."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    mod_name = f"rlvr_user_{path.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    if str(path.parent) not in sys.path:  # its own imports of neighbouring files work
        sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[mod_name]
        raise PluginError(f"{path}: importing it failed: {type(e).__name__}: {e}") from e
    try:  # its functions then pickle by value: worker processes need not find the file's module name
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except ImportError:
        pass
    return module


def load_object(ref: str) -> Any:
    """The object named by ``file.py:name`` or ``package.module:name``."""
    if not is_reference(ref):
        raise PluginError(f"{ref!r}: expected path/to/file.py:name or package.module:name")
    left, name = ref.rsplit(":", 1)
    if left.endswith(".py") or "/" in left or os.sep in left:
        path = Path(left).expanduser().resolve()
        if not path.is_file():
            raise PluginError(f"{ref}: no such file {left} (relative paths are read from {Path.cwd()})")
        module = _module_from_file(path)
    else:
        module = _import_module(left, ref)
    if not hasattr(module, name):
        names = [n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else (f" (it defines {', '.join(sorted(names))})" if names else "")
        raise PluginError(f"{ref}: {left} has no {name!r}{hint}")
    return getattr(module, name)


def _import_module(name: str, label: str) -> Any:
    if os.getcwd() not in sys.path:  # `--import my_verifiers` finds ./my_verifiers.py
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name and not name.startswith(f"{e.name}."):
            raise PluginError(f"{label}: importing {name} failed: {e}") from e
        raise PluginError(f"{label}: no module named {e.name!r} (and no file {name.replace('.', '/')}.py "
                          f"in {os.getcwd()})") from None
    except Exception as e:
        raise PluginError(f"{label}: importing {name} failed: {type(e).__name__}: {e}") from e


def import_targets(targets: Iterable[str], *, flag: str = "--import") -> list[Any]:
    """Import each module name or .py path (a directory with __init__.py counts as a module);
    remember them in ``RLVR_IMPORTS`` for worker processes. Returns the modules."""
    modules = []
    for target in targets:
        path = Path(target).expanduser()
        if target.endswith(".py") or (path.exists() and path.suffix == ""):
            if path.is_dir() and (path / "__init__.py").is_file():
                sys.path.insert(0, str(path.resolve().parent))
                modules.append(_import_module(path.name, f"{flag} {target}"))
                target = str(path.resolve())
            elif path.is_file():  # imported under its own name, so workers can unpickle what it defines
                parent = str(path.resolve().parent)
                if parent not in sys.path:
                    sys.path.insert(0, parent)
                modules.append(_import_module(path.stem, f"{flag} {target}"))
                target = str(path.resolve())
            else:
                raise PluginError(f"{flag} {target}: no such file (relative paths are read from {Path.cwd()})")
        else:
            modules.append(_import_module(target, f"{flag} {target}"))
        known = [t for t in os.environ.get(ENV_VAR, "").split(os.pathsep) if t]
        if target not in known:
            os.environ[ENV_VAR] = os.pathsep.join([*known, target])
    return modules


def import_from_env() -> None:
    """Import what ``RLVR_IMPORTS`` lists (in a worker process, before resolving an unknown name)."""
    targets = [t for t in os.environ.get(ENV_VAR, "").split(os.pathsep) if t]
    for target in targets:
        try:
            import_targets([target])
        except PluginError:
            pass  # the parent already reported it


class FunctionVerifier:
    """A plain reward function as a verifier: ``fn(completion, sample) -> float | bool | Score``.

    A float ``r`` becomes ``Score(r, passed=r >= pass_threshold)``, a bool ``b`` becomes
    ``Score(float(b), passed=b)``; a `Score` passes through. Anything else (None, a string, NaN)
    raises TypeError/ValueError, which `rlvr.scoring` records as an ``exception`` for that item.
    ``timeout_s`` is the per-item budget the scorer enforces (None: its default, 10 s).
    """

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, timeout_s: float | None = None,
                 pass_threshold: float = 1.0):
        if not callable(fn):
            raise TypeError(f"reward function {fn!r} is not callable")
        self.func, self.timeout_s, self.pass_threshold = fn, timeout_s, pass_threshold
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        try:
            self.__signature__ = inspect.signature(fn)
        except (TypeError, ValueError):
            pass

    def __call__(self, completion: str, sample: Any, **options: Any) -> Any:
        from rlvr.verifiers.base import Score

        out = self.func(completion, sample, **options)
        if isinstance(out, Score):
            return out
        if isinstance(out, bool):
            return Score(float(out), out)
        if isinstance(out, (int, float)) or type(out).__name__ in ("float32", "float64", "int64", "Tensor"):
            reward = float(out)
            if not math.isfinite(reward):
                raise ValueError(f"reward function {self.name!r} returned {reward}")
            return Score(reward, reward >= self.pass_threshold)
        raise TypeError(f"reward function {self.name!r} returned {type(out).__name__} {out!r}; "
                        "return a float, a bool or a Score")

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "__signature__"}
        try:
            import cloudpickle

            state["func"] = ("cloudpickle", cloudpickle.dumps(self.func))
        except ImportError:  # pickled by reference: a module-level function
            pass
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        fn = state["func"]
        if isinstance(fn, tuple) and len(fn) == 2 and fn[0] == "cloudpickle":
            import cloudpickle

            state["func"] = cloudpickle.loads(fn[1])
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"FunctionVerifier({self.name})"
