"""Fully sharded data parallel training (trainer=fsdp): parameters, gradients and optimizer state split
over the processes, one FSDP unit per transformer block, optionally recomputing each block's
activations in the backward pass.

Lightning's ``ModelParallelStrategy`` sets up the processes and a device mesh; ``ZooModule.configure_model``
then calls ``shard`` on the network with the mesh's data-parallel dimension. This is torch's FSDP2
(``fully_shard``), which also runs on CPUs over gloo: the tests compare 2 sharded CPU processes with 2
DDP ones step for step. Lightning's own ``FSDPStrategy`` (FSDP1) needs a GPU.
"""

from __future__ import annotations

import torch.nn as nn


def block_classes() -> tuple[type[nn.Module], ...]:
    """The block classes that become FSDP units: the zoo's transformer block and the public-checkpoint
    decoder block."""
    from zoo.nn.blocks import TransformerBlock
    from zoo.nn.decoder import DecoderBlock

    return TransformerBlock, DecoderBlock


def shard(net: nn.Module, mesh, activation_checkpointing: bool = False, mixed_precision: str | None = None) -> int:
    """Wrap each block of ``net`` (``block_classes``), then ``net`` itself, with ``fully_shard`` over
    ``mesh`` (1-d: the data-parallel processes). ``activation_checkpointing`` recomputes each block's
    activations in the backward pass (memory for compute); ``mixed_precision`` "bf16" keeps the sharded
    parameters in float32 and computes in bfloat16, reducing gradients in float32. Returns the number
    of blocks wrapped (0: the network has none, and is sharded as one unit)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if mixed_precision not in (None, "bf16"):
        raise ValueError(f"mixed_precision={mixed_precision!r}: expected None or 'bf16'")
    policy = MixedPrecisionPolicy()
    if mixed_precision == "bf16":
        import torch

        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    blocks = [m for m in net.modules() if isinstance(m, block_classes())]
    if activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

        apply_activation_checkpointing(net, check_fn=lambda m: isinstance(m, block_classes()))
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(net, mesh=mesh, mp_policy=policy)
    return len(blocks)


GIB = 2**30


def memory_per_rank(net: nn.Module, world_size: int, seq_len: int, micro_batch: int = 1,
                    activation_checkpointing: bool = True) -> dict[str, float]:
    """An estimate, in GiB, of what one rank holds when ``net`` (built on the meta device: only shapes
    count) trains with trainer=fsdp, AdamW and bf16 compute over float32 shards:
    - weights, gradients, optimizer: float32 parameters, gradients and AdamW's two moments, each split
      over ``world_size`` ranks (16 bytes a parameter in all);
    - gathered: the largest block's bf16 parameters, twice (the block computing and the next one being
      gathered), plus the blocks outside the transformer stack (embedding, head) gathered whole;
    - activations: with checkpointing, each block's bf16 input kept for the backward pass plus the
      working set of one block (about 16 x dim + 3 x MLP width values a token); the float32 logits
      of the loss. Attention is taken as memory-efficient (no L x L scores kept).
    Exact in the parameter counts; the activation terms are the usual transformer approximations."""
    blocks = [m for m in net.modules() if isinstance(m, block_classes())]
    total = sum(p.numel() for p in net.parameters())
    in_blocks = sum(p.numel() for b in blocks for p in b.parameters())
    largest = max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0)
    dim, depth = net.cfg.dim, len(blocks)
    hidden, vocab = net.cfg.mlp_hidden, net.cfg.vocab_size
    tokens = micro_batch * seq_len
    working = tokens * (16 * dim + 3 * hidden) * 2  # one block's forward / recompute, bf16
    kept = tokens * dim * 2 * depth if activation_checkpointing else working * depth
    out = {"parameters": total, "weights": 4 * total / world_size / GIB, "gradients": 4 * total / world_size / GIB,
           "optimizer": 8 * total / world_size / GIB,
           "gathered": (2 * 2 * largest + 2 * (total - in_blocks)) / GIB,
           "activations": (kept + working + tokens * vocab * 4) / GIB}
    out["total"] = sum(v for k, v in out.items() if k != "parameters")
    return out
