"""Per-item evaluation results gathered over DDP processes, each item counted once.

Evaluation loaders shard a split over the processes and pad the shards to equal length with repeats of
the first items (:class:`sciml.data.sampling.ShardedSampler`, as torch's DistributedSampler does), so a
plain all-gather holds some items twice. Every result row therefore starts with its item's index in the
split; keeping one row per index, in index order, makes split-level metrics independent of the number of
processes and of how the split was sharded.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor


def gather_unique(module: pl.LightningModule, rows: Tensor, *aligned: Tensor) -> tuple[Tensor, ...]:
    """Rows ``(N, K)`` of every process, ``rows[:, 0]`` the item index, each index once, sorted by index; and
    each tensor of ``aligned`` (``(N, ...)``, row ``n`` belonging to ``rows[n]``) gathered and kept alike.

    Every process must call it (it all-gathers when the trainer runs more than one).
    """
    tensors = (rows, *aligned)
    if module.trainer.world_size > 1:
        # (world, N, ...) -> (world * N, ...); on the module's device, as NCCL gathers only CUDA tensors
        tensors = tuple(module.all_gather(t.to(module.device)).flatten(0, 1) for t in tensors)
    first: dict[int, int] = {}
    for position, index in enumerate(tensors[0][:, 0].tolist()):
        first.setdefault(int(index), position)
    keep = torch.tensor([first[index] for index in sorted(first)], device=tensors[0].device)
    return tuple(t[keep] for t in tensors)
