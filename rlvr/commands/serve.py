"""rlvr serve: run a vLLM engine behind HTTP, with a weight-update endpoint, for VLLMServerSampler.

    rlvr serve --model PATH [--host 127.0.0.1] [--port 8000] [--dtype auto] [--kv-cache-gib 1]
               [--gpu-memory-utilization 0.9] [--tensor-parallel-size 1] [--enable-sleep-mode]

The trainer then uses ``VLLMServerSampler("http://HOST:PORT")``: OpenAI-style ``/v1/completions``,
``/update_weights`` (safetensors bytes), ``/logprobs`` (the probe of the sync check), ``/sleep``,
``/wake``, ``/health`` and ``/info`` (see `rlvr.samplers.vllm_server`). The server has no
authentication and accepts weights from anyone who can reach it: it binds 127.0.0.1 unless
``--host`` says otherwise. Ctrl-C (SIGINT) or SIGTERM stops it and shuts the engine down.

Also runnable as ``python -m rlvr.commands.serve --model PATH``. Needs vllm
(``scripts/install_vllm_cpu.sh`` on CPU machines).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rlvr serve``."""
    parser.add_argument("--model", required=True, metavar="PATH", help="a local HF model directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; default 8000)")
    parser.add_argument("--dtype", default="auto", help="engine dtype: auto, float32, bfloat16, float16")
    parser.add_argument("--max-model-len", type=int, default=None, metavar="N")
    parser.add_argument("--kv-cache-gib", type=float, default=None, metavar="GIB",
                        help="KV-cache size (CPU default 1 GiB unless VLLM_CPU_KVCACHE_SPACE is set)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None, metavar="F")
    parser.add_argument("--tensor-parallel-size", type=int, default=1, metavar="N")
    parser.add_argument("--enable-sleep-mode", action="store_true", help="GPU only: allow /sleep and /wake")
    parser.add_argument("--sync-atol", type=float, default=None, metavar="A",
                        help="probe tolerance reported to clients (default by dtype)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Start the engine, serve until SIGINT/SIGTERM, shut the engine down."""
    from rlvr.io import InputError

    if not os.path.isfile(os.path.join(args.model, "config.json")):
        raise InputError(f"--model {args.model}: not a model directory (no config.json in it)")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: must be between 0 and 65535")
    from rlvr.samplers.vllm import VLLMSampler
    from rlvr.samplers.vllm_server import make_server

    kv = None if args.kv_cache_gib is None else int(args.kv_cache_gib * (1 << 30))
    sampler = VLLMSampler(
        args.model, dtype=args.dtype, seed=args.seed, max_model_len=args.max_model_len,
        kv_cache_bytes=kv, gpu_memory_utilization=args.gpu_memory_utilization,
        enable_sleep_mode=args.enable_sleep_mode, tensor_parallel_size=args.tensor_parallel_size,
        sync_atol=args.sync_atol,
    )
    try:
        server = make_server(sampler, args.host, args.port)
        host, port = server.server_address[:2]
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        thread = threading.Thread(target=server.serve_forever, name="rlvr-serve", daemon=True)
        thread.start()
        print(f"rlvr serve: {args.model} on http://{host}:{port} (engine up in {sampler.startup_s:.1f} s)",
              flush=True)
        while not stop.wait(0.5):
            pass
        server.shutdown()
        server.server_close()
    finally:
        sampler.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlvr serve", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from rlvr.io import InputError

    try:
        return run(args)
    except InputError as e:
        print(f"rlvr serve: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
