"""`VLLMServerSampler` and the HTTP server of ``rlvr serve``: generation on other devices or hosts.

    rlvr serve --model PATH --port 8000                       # on the generation GPUs / host
    s = VLLMServerSampler("http://127.0.0.1:8000")            # in the trainer
    groups = s.generate(prompts, n=8, params=SamplingParams())
    report = s.update_weights(model)                          # push + probe check, as VLLMSampler

The server wraps one `VLLMSampler` (so the same engine options, worker extension and deadlines)
in a small threaded HTTP server from the standard library; engine calls are serialised by a lock
(send a whole batch per request: vLLM batches it internally). Endpoints:

| endpoint               | body                                          | answer                          |
|------------------------|-----------------------------------------------|---------------------------------|
| GET  /health           |                                               | ``{"ok": true}``                |
| GET  /info             |                                               | model, vocab_size, dtype, tolerance |
| POST /v1/completions   | OpenAI completions JSON (prompt, n, max_tokens, temperature, top_p, top_k, stop, seed) | OpenAI choices + ``token_ids``, ``prompt_token_ids``, ``logprobs.token_logprobs`` |
| POST /update_weights   | safetensors bytes (`rlvr.samplers.sync.pack_weights`) | tensors loaded, seconds   |
| POST /logprobs         | ``{"token_ids": [[...], ...]}``               | teacher-forced logprobs (probe) |
| POST /sleep, /wake     |                                               | ``{"ok": true}``                |

The client computes the trainer's side of the probe itself and raises `WeightSyncError` on drift;
socket timeouts plus a hard deadline turn a stuck server into `SamplerTimeout`.

Security: no authentication and weights are accepted from anyone who can connect, so the server
binds 127.0.0.1 unless told otherwise. Put it on a private network only.

What it does not do: stream, batch requests from several clients together, or speak the whole
OpenAI API (only what a trainer needs).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rlvr.samplers.base import (
    Completion,
    Group,
    Prompts,
    Sampler,
    SamplerError,
    SamplerTimeout,
    SamplingParams,
    check_n,
)
from rlvr.samplers.sync import (
    SyncReport,
    SyncTolerance,
    as_tolerance,
    call_with_deadline,
    check_sync,
    checked_push,
    make_probe,
    pack_weights,
    reference_logprobs,
)

__all__ = ["VLLMServerSampler", "make_server", "params_from_request"]

MAX_BODY = 64 << 30


def params_from_request(req: dict[str, Any]) -> tuple[int, SamplingParams]:
    """(n, SamplingParams) from an OpenAI completions request body; errors name the field."""
    fields = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
              "max_tokens": "max_new_tokens", "seed": "seed"}
    kw: dict[str, Any] = {}
    for src, dst in fields.items():
        if req.get(src) is not None:
            kw[dst] = req[src]
    stop = req.get("stop")
    if stop is not None:
        kw["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
    n = req.get("n", 1)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"field 'n': must be a positive integer, got {n!r}")
    try:
        return n, SamplingParams(**kw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"sampling fields: {e}") from None


def _prompts(req: dict[str, Any]) -> list[Any]:
    p = req.get("prompt")
    if isinstance(p, str) or (isinstance(p, list) and p and all(isinstance(t, int) for t in p)):
        return [p]
    if isinstance(p, list) and p and all(isinstance(x, (str, list)) for x in p):
        return p
    raise ValueError("field 'prompt': expected a string, a list of token ids, or a list of those")


def make_server(sampler: Any, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) around a `VLLMSampler`. ``port=0`` picks a free port."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: one line per request is noise
            pass

        def _send(self, code: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            size = int(self.headers.get("Content-Length", "0"))
            if size > MAX_BODY:
                raise ValueError(f"body of {size} bytes is over the {MAX_BODY} limit")
            return self.rfile.read(size)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"ok": True})
            elif self.path == "/info":
                self._send(200, {"model": sampler.model_path, "vocab_size": sampler.config.vocab_size,
                                 "dtype": sampler.dtype, "sync_tol": dataclasses.asdict(sampler.sync_tol)})
            else:
                self._send(404, {"error": f"no endpoint GET {self.path}"})

        def do_POST(self) -> None:
            route = self.path.split("?")[0]
            try:
                with lock:
                    if route == "/v1/completions":
                        self._send(200, self._complete(json.loads(self._body() or b"{}")))
                    elif route == "/update_weights":
                        reprocess = "reprocess_lm_head=0" not in self.path
                        start = time.monotonic()
                        info = sampler.push_weights(self._body(), reprocess_lm_head=reprocess)
                        self._send(200, {**info, "seconds": time.monotonic() - start})
                    elif route == "/logprobs":
                        req = json.loads(self._body() or b"{}")
                        rows = req.get("token_ids")
                        if not (isinstance(rows, list) and rows and all(isinstance(r, list) and len(r) > 1 for r in rows)):
                            raise ValueError("field 'token_ids': expected a list of token-id lists (length > 1)")
                        self._send(200, {"logprobs": sampler.probe_logprobs(rows)})
                    elif route in ("/sleep", "/wake"):
                        (sampler.sleep if route == "/sleep" else sampler.wake)()
                        self._send(200, {"ok": True})
                    else:
                        self._send(404, {"error": f"no endpoint POST {route}"})
            except (ValueError, TypeError, json.JSONDecodeError) as e:
                self._send(400, {"error": str(e)})
            except Exception as e:  # noqa: BLE001 - the engine's failure goes back to the client
                self._send(500, {"error": f"{type(e).__name__}: {e}"})

        def _complete(self, req: dict[str, Any]) -> dict[str, Any]:
            n, params = params_from_request(req)
            groups = sampler.generate(_prompts(req), n, params)
            choices = []
            for b, g in enumerate(groups):
                for j, c in enumerate(g.completions):
                    choices.append({"index": b * n + j, "text": c.text, "finish_reason": c.finish_reason,
                                    "token_ids": c.token_ids, "prompt_token_ids": g.prompt_token_ids,
                                    "logprobs": {"token_logprobs": c.logprobs}})
            used = sum(len(c.token_ids) for g in groups for c in g.completions)
            return {"object": "text_completion", "created": int(time.time()), "model": sampler.model_path,
                    "choices": choices,
                    "usage": {"prompt_tokens": sum(len(g.prompt_token_ids) for g in groups),
                              "completion_tokens": used}}

    return ThreadingHTTPServer((host, port), Handler)


class VLLMServerSampler(Sampler):
    """Client of ``rlvr serve``: same interface, check and deadlines as `VLLMSampler`."""

    def __init__(self, url: str, *, timeout_s: float = 1800.0, sync_timeout_s: float = 300.0,
                 sync_tol: SyncTolerance | float | None = None, sync_atol: float | None = None,
                 probe_rows: int = 4, probe_len: int = 32):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.sync_timeout_s = sync_timeout_s
        self.info = self._request("GET", "/info", None, sync_timeout_s)
        served = SyncTolerance(**self.info["sync_tol"]) if "sync_tol" in self.info else None
        mine = sync_tol if sync_tol is not None else sync_atol
        self.sync_tol = as_tolerance(mine if mine is not None else served, self.info["dtype"])
        self.probe = make_probe(self.info["vocab_size"], probe_rows, probe_len)

    def _request(self, method: str, path: str, body: Any, timeout_s: float, raw: bool = False) -> Any:
        data = body if raw or body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/octet-stream" if raw else "application/json"}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)

        def call() -> Any:
            try:
                with urllib.request.urlopen(req, timeout=timeout_s) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")
                try:
                    detail = json.loads(detail).get("error", detail)
                except json.JSONDecodeError:
                    pass
                raise SamplerError(f"{method} {self.url}{path}: HTTP {e.code}: {detail}") from None
            except urllib.error.URLError as e:
                if isinstance(e.reason, TimeoutError):
                    raise SamplerTimeout(f"{method} {self.url}{path}: no answer within {timeout_s:g} s") from None
                raise SamplerError(f"{method} {self.url}{path}: {e.reason}") from None
            except TimeoutError:
                raise SamplerTimeout(f"{method} {self.url}{path}: no answer within {timeout_s:g} s") from None
            except (OSError, http.client.HTTPException) as e:  # reset, refused, or cut off mid-answer
                raise SamplerError(f"{method} {self.url}{path}: {type(e).__name__}: {e}") from None
            except json.JSONDecodeError as e:
                raise SamplerError(f"{method} {self.url}{path}: the answer is not JSON ({e})") from None

        return call_with_deadline(call, timeout_s + 5, f"{method} {self.url}{path}")

    def engine_name(self) -> str:
        return f"the vLLM server at {self.url}"

    def generate(self, prompts: Prompts, n: int, params: SamplingParams) -> list[Group]:
        """Sample ``n`` completions per prompt on the server."""
        check_n(n)
        plist = [p if isinstance(p, str) else [int(t) for t in p] for p in prompts]
        body = {"prompt": plist, "n": n, "max_tokens": params.max_new_tokens,
                "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
                "stop": list(params.stop), "seed": params.seed, "logprobs": 0}
        out = self._request("POST", "/v1/completions", body, self.timeout_s)
        choices = sorted(out["choices"], key=lambda c: c["index"])
        if len(choices) != len(plist) * n:
            raise SamplerError(f"server returned {len(choices)} choices for {len(plist)} prompts × {n}")
        groups = []
        for b, p in enumerate(plist):
            mine = choices[b * n:(b + 1) * n]
            comps = [Completion(text=c["text"], token_ids=c["token_ids"],
                                logprobs=c["logprobs"]["token_logprobs"], finish_reason=c["finish_reason"])
                     for c in mine]
            groups.append(Group(prompt_token_ids=mine[0]["prompt_token_ids"], completions=comps,
                                prompt=p if isinstance(p, str) else None))
        return groups

    def probe_logprobs(self, probe: list[list[int]] | None = None) -> list[list[float]]:
        rows = self.probe if probe is None else probe
        return self._request("POST", "/logprobs", {"token_ids": rows}, self.sync_timeout_s)["logprobs"]

    def push_weights(self, weights: Any, *, reprocess_lm_head: bool = True) -> dict[str, Any]:
        """Send weights (module, state dict or `pack_weights` bytes) to the server. No check."""
        data = weights if isinstance(weights, (bytes, bytearray)) else pack_weights(weights)
        path = "/update_weights" + ("" if reprocess_lm_head else "?reprocess_lm_head=0")
        return self._request("POST", path, bytes(data), self.sync_timeout_s, raw=True)

    def check_weights(self, reference: Any, *, push_s: float = 0.0) -> SyncReport:
        start = time.monotonic()
        ref = reference_logprobs(reference, self.probe)
        eng = self.probe_logprobs()
        return check_sync(eng, ref, self.sync_tol, push_s=push_s, check_s=time.monotonic() - start)

    def update_weights(self, weights: Any, *, reference: Any = None) -> SyncReport:
        """Push ``weights`` and check against ``reference`` (default: ``weights``, a module)."""
        reference = weights if reference is None else reference
        if not hasattr(reference, "parameters"):
            raise TypeError("VLLMServerSampler.update_weights needs the trainer's model: pass a module, "
                            "or reference=model with a state dict")
        return checked_push(lambda: self.push_weights(weights), self.probe_logprobs, reference,
                            self.probe, self.sync_tol)

    def sleep(self) -> None:
        """Ask the server to sleep (GPU with ``--enable-sleep-mode``; else a no-op there)."""
        self._request("POST", "/sleep", {}, self.sync_timeout_s)

    def wake(self) -> None:
        self._request("POST", "/wake", {}, self.sync_timeout_s)
