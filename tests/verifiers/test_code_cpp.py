"""C++ stdin/stdout grading through the languages table: compiled once per completion, run per test.

Runs on the Docker pool with the `rlvr-sandbox:cpp` image (marked `docker`: skipped without an
engine or the image locally, a failure under CI=true, where scripts/setup_docker.sh builds it) and
on LocalSandbox when this machine has g++.
"""

from __future__ import annotations

import shutil

import pytest

from rlvr.verifiers import Sample, VerifierError, get_verifier
from tests.conftest import require
from tests.verifiers.conftest import make_box

SUM = Sample(tests=[{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "5 5\n", "stdout": "10\n"}, {"stdin": "-4 1\n", "stdout": "-3\n"}])
RIGHT = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }\n"
WRONG = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a - b << '\\n'; }\n"
# Counts its own runs in the scratch dir: one binary, run once per test, prints 1, 2, 3.
COUNTER = (
    "#include <fstream>\n#include <iostream>\n"
    "int main() { std::ofstream f(\"runs\", std::ios::app); f << 'x'; f.close();\n"
    "  std::ifstream g(\"runs\"); std::string s; g >> s; std::cout << s.size() << '\\n'; }\n"
)


def cpp(src: str) -> str:
    return f"Here it is.\n```cpp\n{src}```\n"


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def v(request):
    if request.param == "local" and shutil.which("g++") is None:
        pytest.skip("g++ is not installed here (LocalSandbox compiles on this machine)")
    if request.param == "docker":
        from tests.sandboxes.conftest import docker_problem

        problem = docker_problem()
        require(problem is None, problem or "")
        import docker

        try:
            docker.from_env().images.get("rlvr-sandbox:cpp")
            built = True
        except Exception:  # noqa: BLE001
            built = False
        require(built, "the rlvr-sandbox:cpp image is not built (rlvr sandbox build --language cpp)")
    box = make_box(request.param, image="rlvr-sandbox:cpp", memory_mb=1024)  # the pool's default: room for g++
    yield get_verifier("code", sandbox=box, language="cpp", timeout_s=20.0, test_timeout_s=2.0)
    box.close()


def test_right_and_wrong_programs(v):
    assert v(cpp(RIGHT), SUM).reward == 1.0
    s = v(cpp(WRONG), SUM)
    assert s.reward == 0.0 and s.info["tests"][0]["got"] == "-1\n"


def test_compiled_once_and_run_once_per_test(v):
    counts = Sample(tests=[{"stdin": "", "stdout": f"{k}\n"} for k in (1, 2, 3)])
    s = v(cpp(COUNTER), counts)
    assert s.reward == 1.0  # the same binary ran three times: one compile for the three tests
    res = v._run(v._pack([v._prepare(cpp(COUNTER), counts)], sweep=False))
    done = [line for line in res.stdout.splitlines() if '"done":true' in line]
    assert len(done) == 1 and '"compiles":1' in done[0]


def test_compile_error_fails_every_test_with_the_message(v):
    s = v(cpp("int main( { return 0; }\n"), SUM)
    assert s.reward == 0.0 and all("compile error" in t["error"] for t in s.info["tests"])


def test_crash_and_timeout(v):
    crash = v(cpp("int main() { volatile int *p = nullptr; *p = 1; }\n"), SUM)
    assert crash.reward == 0.0 and crash.info["tests"][0]["error"] == "crash: killed by signal 11"
    loop = v(cpp("int main() { volatile long x = 0; for (;;) x++; }\n"), Sample(tests=[{"stdin": "", "stdout": "1\n"}]))
    assert loop.reward == 0.0 and loop.info["timeout"]


def test_score_many_grades_a_batch_in_order(v):
    progs = [RIGHT, WRONG, RIGHT, "not c++ at all\n"]
    assert [s.reward for s in v.score_many([cpp(p) for p in progs], [SUM] * 4)] == [1.0, 0.0, 1.0, 0.0]


def test_only_stdio_tests_for_a_compiled_language(v):
    with pytest.raises(VerifierError, match="stdin/stdout tests only"):
        v(cpp(RIGHT), Sample(tests=["assert f(1) == 2"]))
