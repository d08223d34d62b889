"""User code by file or module (`rlvr.plugins`): references, --import, and plain reward functions."""

from __future__ import annotations

import os
import pickle

import pytest

from rlvr.plugins import FunctionVerifier, PluginError, import_targets, is_reference, load_object
from rlvr.verifiers import Sample, Score, VerifierError, get_verifier

CODE = '''
from rlvr.verifiers import Score

def exact(completion, sample):
    return completion.strip() == str(sample.answer)

def partial(completion, sample, scale=1.0):
    return scale * len(completion) / 10

def shout(question, tokenizer=None):
    return question.upper() + " ="
'''


@pytest.fixture
def code_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rewards_x1.py").write_text(CODE)
    return tmp_path / "rewards_x1.py"


def test_is_reference():
    assert is_reference("a/b.py:fn") and is_reference("pkg.mod:fn")
    assert not is_reference("math") and not is_reference("a.py:") and not is_reference("C:\\x.py:fn:y")


def test_file_reference_as_verifier_template_and_errors(code_file):
    v = get_verifier("rewards_x1.py:exact")
    assert v(" 5 ", Sample(answer="5")) == Score(1.0, True) and v("6", Sample(answer="5")) == Score(0.0, False)
    assert get_verifier("rewards_x1.py:partial", scale=2.0)("abcde", Sample()) == Score(1.0, True)  # 2 * 5 / 10
    with pytest.raises(VerifierError, match="takes no option"):
        get_verifier("rewards_x1.py:exact", scale=2.0)
    with pytest.raises(VerifierError, match=r"rewards_x1.py has no 'exatc'; did you mean 'exact'\?"):
        get_verifier("rewards_x1.py:exatc")
    with pytest.raises(VerifierError, match="no such file nope.py"):
        get_verifier("nope.py:exact")
    from rlvr.templates import render

    assert render("rewards_x1.py:shout", "what is 2+2") == "WHAT IS 2+2 ="


def test_function_verifier_coerces_returns_and_pickles():
    f = FunctionVerifier(lambda c, s: {"a": 0.5, "b": 1.0, "t": True, "s": Score(0.2, True)}.get(c), name="f")
    assert f("a", Sample()) == Score(0.5, False) and f("b", Sample()) == Score(1.0, True)
    assert f("t", Sample()) == Score(1.0, True) and f("s", Sample()) == Score(0.2, True)
    with pytest.raises(TypeError, match="returned NoneType None"):
        f("zzz", Sample())
    with pytest.raises(ValueError, match="returned nan"):
        FunctionVerifier(lambda c, s: float("nan"))("x", Sample())
    back = pickle.loads(pickle.dumps(f))  # a lambda: by value (cloudpickle)
    assert back("b", Sample()) == Score(1.0, True)


def test_import_targets_module_name_from_cwd_and_env(code_file, monkeypatch):
    monkeypatch.delenv("RLVR_IMPORTS", raising=False)
    (code_file.parent / "regs_x1.py").write_text(
        "from rlvr.verifiers import Score, register_verifier\n"
        "@register_verifier('always_x1')\ndef always(c, s):\n    return Score(1.0, True)\n")
    import_targets(["regs_x1"])
    assert get_verifier("always_x1")("", Sample()).passed is True
    assert os.environ["RLVR_IMPORTS"] == "regs_x1"
    with pytest.raises(PluginError, match="no module named 'nope_x1'"):
        import_targets(["nope_x1"])
    with pytest.raises(PluginError, match="no such file"):
        import_targets(["missing_x1.py"])
    assert load_object("regs_x1:always").__name__ == "always"
