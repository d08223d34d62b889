"""The `judge` verifier against a real `rlvr serve` on 127.0.0.1 (transport, batching, cache,
deadlines, parse errors), plus score parsing on hand-written judgments.

The served model is the demo model (it adds numbers), so its "judgments" mean nothing; the tests
use an arithmetic template to get a deterministic, checkable number out of it, and the default
rubric template to get unparseable text. No traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading

import pytest

from rlvr.verifiers import Sample, get_verifier
from rlvr.verifiers.judge import JudgeUnavailable, JudgeVerifier, parse_score

ARITH = ("A conversation between User and Assistant. The Assistant puts the final answer inside <answer> </answer> "
         "tags.\nUser: What is {completion} + 10?\nAssistant:")


class Counting(JudgeVerifier):
    """The judge, counting the prompts of each HTTP request it sends (instrumentation only)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.requests: list[int] = []

    def _post(self, texts, timeout):
        self.requests.append(len(texts))
        return super()._post(texts, timeout)


# ------------------------------------------------------------------ parsing (no server)

@pytest.mark.parametrize("text, want", [
    ("Clear.\nScore: 7", (7.0, "ok")),
    ("**Score:** 8/10", (8.0, "ok")),
    ("Rating: 4 out of 5", (8.0, "ok")),  # rescaled to 0..10
    ('{"score": 6, "reason": "fine"}', (6.0, "ok")),
    ("Fine overall.\n9", (9.0, "ok")),
    ("so \\boxed{3}", (3.0, "ok")),
    ("<score> 2 </score>", (2.0, "ok")),
    ("Score: 3\nOn reflection, Score: 5", (5.0, "ok")),  # the last one counts
    ("Score: 11", (11.0, "out_of_range")),
    ("Score: -1", (-1.0, "out_of_range")),
    ("It scored 1000 points", (None, "unparseable")),
    ("no number here", (None, "unparseable")),
    ("", (None, "unparseable")),
])
def test_parse_score(text, want):
    assert parse_score(text, 0, 10)[:2] == want


def test_the_rationale_is_the_text_before_the_score_and_errors_are_data():
    v = JudgeVerifier("http://127.0.0.1:9", scale=[1, 5])
    ok = v._score("Correct and concise.\nScore: 4")
    assert ok.reward == 0.75 and ok.passed is None and ok.info == {"score": 4.0, "rationale": "Correct and concise."}
    bad = v._score("I cannot decide.")
    assert bad.passed is None and bad.info["error"] == "unparseable" and bad.info["judgment"] == "I cannot decide."
    assert "score" not in bad.info  # never a judged 0
    v.threshold = 0.5
    assert v._score("Score: 3").passed is True and v._score("Score: 2").passed is False  # 0.5 and 0.25


def test_bad_options_are_errors():
    with pytest.raises(ValueError, match="scale"):
        JudgeVerifier("http://x", scale=[5, 5])
    with pytest.raises(ValueError, match="lacks {completion}"):
        JudgeVerifier("http://x", template="{prompt}")
    with pytest.raises(ValueError, match="a field other than"):
        JudgeVerifier("http://x", template="{completion} {verdict}")
    with pytest.raises(ValueError, match="api must be"):
        JudgeVerifier("http://x", api="grpc")


def test_a_judge_that_never_answers_times_out_per_item():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # accepts connections, never replies: a hung judge
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        v = Counting(f"http://127.0.0.1:{srv.getsockname()[1]}", timeout_s=1.0, retries=3, batch_size=1, concurrency=2)
        out = v.score_many(["a", "b", "c"], [Sample(prompt="p")] * 3)
        assert [s.info["error"] for s in out] == ["timeout"] * 3 and all(s.passed is None for s in out)
        assert v._cache == {}  # failures are not cached
    finally:
        stop.set()
        t.join(5)
        for c in held:
            c.close()
        srv.close()


def test_an_unreachable_judge_raises():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    v = JudgeVerifier(f"http://127.0.0.1:{port}", retries=1, backoff_s=0.01, timeout_s=5)
    with pytest.raises(JudgeUnavailable, match=f"127.0.0.1:{port}.*unreachable"):
        v.score_many(["a"], [Sample(prompt="p")])


# ------------------------------------------------------------------ against rlvr serve

@pytest.mark.vllm
def test_batched_concurrent_requests_cache_and_scores_from_rlvr_serve(demo_serve_url):
    v = Counting(demo_serve_url, model="judge", rubric="unused", scale=[0, 100], template=ARITH, max_tokens=16,
                 batch_size=2, concurrency=2)
    completions = ["23", "41", "23", "30", "55"]
    out = v.score_many(completions, [Sample(prompt="p")] * 5)
    assert sorted(v.requests) == [2, 2]  # 4 distinct items, 2 per request; the repeat is judged once
    for c, s in zip(completions, out):
        if "error" in s.info:  # the demo model is not always right; what it wrote is kept
            assert s.info["error"] == "unparseable" and s.info["judgment"]
        else:
            assert s.info["score"] == int(c) + 10 and s.reward == pytest.approx((int(c) + 10) / 100)
    assert out[0].info == out[2].info
    assert sum("score" in s.info for s in out) >= 2  # the demo model adds two-digit numbers
    again = v.score_many(completions, [Sample(prompt="p")] * 5)
    parsed = [i for i, s in enumerate(out) if "error" not in s.info]
    assert [again[i].info for i in parsed] == [out[i].info for i in parsed]
    assert sum(v.requests[2:]) == len({completions[i] for i in range(5) if i not in parsed})  # only failures are re-asked
    other_rubric = Counting(demo_serve_url, rubric="different", scale=[0, 100], template=ARITH, max_tokens=16)
    other_rubric._cache = v._cache  # the same cache, another rubric: a miss
    other_rubric.score_many(["23"], [Sample(prompt="p")])
    assert other_rubric.requests == [1]


@pytest.mark.vllm
def test_unparseable_judgments_deadlines_and_http_errors_from_rlvr_serve(demo_serve_url):
    v = JudgeVerifier(demo_serve_url, rubric="Is the answer right?", max_tokens=24)  # the default prompt: the demo model rambles
    out = v.score_many(["The answer is 4", "5"], [Sample(prompt="What is 2+2?", answer="4")] * 2)
    assert all(s.info["error"] == "unparseable" and s.passed is None and isinstance(s.info["judgment"], str) for s in out)
    slow = JudgeVerifier(demo_serve_url, template=ARITH, max_tokens=400, timeout_s=0.001, retries=0)
    assert [s.info["error"] for s in slow.score_many(["11", "12"], [Sample()] * 2)] == ["timeout", "timeout"]
    bad = JudgeVerifier(demo_serve_url, template=ARITH, temperature=-1.0)  # rlvr serve answers 400
    with pytest.raises(JudgeUnavailable, match="http_400.*temperature"):
        bad.score_many(["11"], [Sample()])
    # the server is still fine, and the in-process scorer batches the judge through prefetch
    from rlvr.scoring import score_batch
    from rlvr.verifiers import combine

    judge = Counting(demo_serve_url, scale=[0, 100], template=ARITH, max_tokens=16, batch_size=8)
    res = score_batch(combine({"judge": 1.0}, {"judge": judge}), ["23", "41", "30"], [Sample()] * 3, workers=0)
    assert judge.requests == [3] and len(res) == 3
    built = get_verifier("judge", endpoint=demo_serve_url, model="m", rubric="r", scale=10)
    assert isinstance(built, JudgeVerifier) and (built.low, built.high, built.rubric) == (0.0, 10.0, "r")


@pytest.mark.vllm
def test_a_5xx_is_retried_and_then_rlvr_serve_answers(demo_serve_url):
    """A proxy in front of rlvr serve answers the first request with 503, then forwards: one retry."""
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[int] = []

    class Flaky(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(len(body))
            if len(hits) == 1:
                self.send_response(503)
                self.end_headers()
                self.wfile.write(b"busy")
                return
            req = urllib.request.Request(demo_serve_url + self.path, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                data = resp.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    t = threading.Thread(target=proxy.serve_forever, daemon=True)
    t.start()
    try:
        v = JudgeVerifier(f"http://127.0.0.1:{proxy.server_address[1]}", scale=[0, 100], template=ARITH, max_tokens=16,
                          retries=1, backoff_s=0.01)
        out = v.score_many(["23"], [Sample()])
        assert len(hits) == 2 and "timeout" not in str(out[0].info) and "http_503" not in str(out[0].info)
        assert out[0].info.get("score") == 33.0 or out[0].info.get("error") == "unparseable"
        no_retry = JudgeVerifier(f"http://127.0.0.1:{proxy.server_address[1]}", template=ARITH, retries=0)
        hits.clear()
        with pytest.raises(JudgeUnavailable, match="http_503.*busy"):
            no_retry.score_many(["23"], [Sample()])
    finally:
        proxy.shutdown()
        proxy.server_close()
        t.join(10)
