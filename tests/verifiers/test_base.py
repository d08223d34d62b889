"""The verifier API: Sample/Score, the registry, options, name errors and entry-point discovery.

Entry points are discovered for real: tests/fixtures/plugin_path holds a module and its
`*.dist-info/entry_points.txt`; putting it on sys.path is what installing that package does.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from rlvr.verifiers import (
    Sample,
    Score,
    Verifier,
    VerifierError,
    base,
    get_verifier,
    list_verifiers,
    register_verifier,
)

PLUGIN_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_path"


@register_verifier("test_base_exact")
def exact(completion: str, sample: Sample, *, strip: bool = True) -> Score:
    """Module-level function verifier with one option."""
    text = completion.strip() if strip else completion
    ok = text == str(sample.answer)
    return Score(reward=float(ok), passed=ok, info={"seen": text})


@register_verifier("test_base_counter")
class Counter:
    """A stateful verifier: counts its calls."""

    def __init__(self, bonus: float = 0.0):
        self.bonus, self.calls = bonus, 0

    def __call__(self, completion: str, sample: Sample) -> Score:
        self.calls += 1
        return Score(reward=self.calls + self.bonus, passed=None)


@pytest.fixture
def plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_PATH))
    yield PLUGIN_PATH
    for name in ("demo_shout", "demo_ends_with", "demo_broken"):
        base._REGISTRY.pop(name, None)


def test_sample_from_row_moves_unknown_keys_to_metadata():
    s = Sample.from_row({"prompt": "2+2?", "answer": "4", "id": 7, "metadata": {"src": "gsm8k"}})
    assert (s.prompt, s.answer, s.tests) == ("2+2?", "4", None)
    assert dict(s.metadata) == {"src": "gsm8k", "id": 7}


def test_score_to_dict_keeps_reward_and_passed_apart():
    assert Score(0.5, None, {"k": 1}).to_dict() == {"reward": 0.5, "passed": None, "info": {"k": 1}}
    assert Score(0.0, False, suspicious=True).to_dict() == {"reward": 0.0, "passed": False, "info": {}, "suspicious": True}


def test_function_verifier_with_options_is_bound_and_picklable():
    v = get_verifier("test_base_exact", strip=False)
    assert v(" 4", Sample(answer="4")).passed is False
    assert get_verifier("test_base_exact")(" 4", Sample(answer="4")).passed is True
    again = pickle.loads(pickle.dumps(v))
    assert again(" 4", Sample(answer=" 4")).info == {"seen": " 4"}
    assert isinstance(v, Verifier)


def test_unknown_option_is_an_error_naming_it():
    with pytest.raises(VerifierError, match=r"test_base_exact.*\['stirp'\]"):
        get_verifier("test_base_exact", stirp=True)
    with pytest.raises(VerifierError, match="bad options"):
        get_verifier("test_base_counter", bonsu=1.0)


def test_class_verifier_keeps_state_per_instance():
    a, b = get_verifier("test_base_counter", bonus=0.5), get_verifier("test_base_counter")
    assert [a("", Sample()).reward for _ in range(3)] == [1.5, 2.5, 3.5]
    assert b("", Sample()).reward == 1.0


def test_unknown_name_suggests_the_closest():
    with pytest.raises(VerifierError, match="unknown verifier 'fromat'; did you mean 'format'"):
        get_verifier("fromat")
    with pytest.raises(VerifierError, match="did you mean 'test_base_exact'"):
        get_verifier("test_base_exakt")


def test_builtin_names_resolve_lazily_and_are_listed():
    names = list_verifiers()
    assert {"math", "format", "length", "test_base_exact"} <= set(names)
    assert get_verifier("format")("<think>a</think><answer>b</answer>", Sample()).passed is True


def test_register_rejects_non_callables():
    with pytest.raises(TypeError, match="not callable"):
        register_verifier("test_base_bad")(42)


def test_entry_point_plugins_are_discovered(plugin_path):
    assert {"demo_shout", "demo_ends_with"} <= set(list_verifiers())
    shout = get_verifier("demo_shout")
    assert shout("YES", Sample()).to_dict() == {
        "reward": 1.0,
        "passed": True,
        "info": {"plugin": "rlvr_demo_plugin"},
    }
    assert shout("no", Sample()).passed is False
    ends = get_verifier("demo_ends_with", suffix="!")  # a class from the plugin, with an option
    assert (ends("hi!", Sample()).passed, ends("hi.", Sample()).passed) == (True, False)
    assert base.declared_timeout("demo_ends_with") == 0.25


def test_entry_point_that_fails_to_load_names_the_distribution(plugin_path):
    with pytest.raises(
        VerifierError, match=r"demo_broken.*rlvr_demo_plugin_missing:nothing.*rlvr-demo-plugin"
    ):
        get_verifier("demo_broken")


def test_entry_point_names_are_suggested(plugin_path):
    with pytest.raises(VerifierError, match="did you mean 'demo_shout'"):
        get_verifier("demo_shuot")


def test_resolve_verifier_accepts_names_pairs_and_callables():
    assert base.resolve_verifier(("format", {"partial_credit": True})).partial_credit is True
    assert base.resolve_verifier(exact) is exact
    with pytest.raises(VerifierError, match="not a verifier"):
        base.resolve_verifier(3)


def test_declared_timeout_reads_options_attributes_and_defaults():
    class Timed:
        timeout_s = 2.0

        def __call__(self, completion, sample):
            return Score(0.0)

    @register_verifier("test_base_timed_fn")
    def timed(completion, sample, timeout_s: float = 1.5):
        return Score(0.0)

    assert base.declared_timeout(Timed()) == 2.0
    assert base.declared_timeout("test_base_timed_fn") == 1.5
    assert base.declared_timeout(("test_base_timed_fn", {"timeout_s": 3})) == 3.0
    assert base.declared_timeout("test_base_exact") is None
    assert base.declared_timeout(exact) is None


def test_no_module_level_deadline_flag_is_left():
    # the scoring worker tells a verifier its deadline through `under_deadline`, not a global
    assert not hasattr(base, "deadline_enforced") and not hasattr(base, "set_deadline_enforced")
