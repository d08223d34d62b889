"""FSDP on CPU: torch's ``fully_shard`` (FSDP2) over gloo, 2 processes, a tiny Llama, 3 AdamW steps.

    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 scripts/fsdp_cpu_check.py

Each rank prints its backend, whether the embedding is a sharded DTensor (its local and global
shape) and its losses. It checks that FSDP's sharding, all-gathers and reduce-scatters work on
gloo; it does not check rlvr's trainer under FSDP: accelerate turns ``distributed_type: FSDP``
with ``use_cpu: true`` into plain multi-CPU DDP (docs/benchmarks.md, "GPU readiness").
"""

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from transformers import LlamaConfig, LlamaForCausalLM


def main() -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, vocab_size=256))
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.manual_seed(1 + dist.get_rank())
    ids = torch.randint(0, 256, (2, 16))  # each rank its own batch
    losses = []
    for _ in range(3):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(round(loss.item(), 4))
    p = model.model.embed_tokens.weight
    local = tuple(p.to_local().shape) if hasattr(p, "to_local") else tuple(p.shape)
    print(f"rank {dist.get_rank()}/{dist.get_world_size()} backend={dist.get_backend()} "
          f"param={type(p).__name__} local={local} global={tuple(p.shape)} losses={losses}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
