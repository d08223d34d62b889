"""A generation server that stays up but stops answering ends an async run at ``async_wait_s``
with an error that names the server (before, the message said only "no batch for step N").

The server here is a real HTTP server on 127.0.0.1 that answers ``GET /info`` like ``rlvr serve``
and then never answers a generation request: what a wedged engine looks like from the trainer.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlvr.async_rollout import AsyncRollouts
from rlvr.samplers import SamplerTimeout, SamplingParams, VLLMServerSampler


def test_a_hanging_server_times_out_with_its_url_in_the_error():
    release = threading.Event()

    class Wedged(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            body = json.dumps({"dtype": "float32", "vocab_size": 64, "model": "wedged"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            release.wait(30)  # alive, connected, silent

    server = ThreadingHTTPServer(("127.0.0.1", 0), Wedged)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        sampler = VLLMServerSampler(url, timeout_s=30)

        def produce(step, pos):
            sampler.generate(["1+1="], n=1, params=SamplingParams(max_new_tokens=4))
            return "never", pos + 1

        rollouts = AsyncRollouts(sampler, produce, max_staleness=1, first_step=1, last_step=2, position=0,
                                 version=0, wait_s=1.0, poll_s=0.05)
        rollouts.start()
        with pytest.raises(SamplerTimeout) as err:
            rollouts.get(1)
        assert url in str(err.value) and "not answering" in str(err.value), err.value
    finally:
        release.set()
        rollouts.close()
        server.shutdown()
        server.server_close()
