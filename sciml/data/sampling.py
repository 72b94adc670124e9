"""Sharded, resumable sampling: the same samples in the same order whatever the process count, and
a data-loader position that survives a restart.

Each epoch is one permutation of the dataset, drawn from ``(seed, epoch)`` alone. Rank ``r`` of ``w`` takes
positions ``r, r + w, r + 2w, ...`` of it, so after ``b`` batches of ``B`` samples on every rank the samples
consumed are exactly the first ``b * B * w`` of the permutation: a run on 2 processes with batch ``B`` sees
the same sample set at each step as a run on 1 process with batch ``2B``, and a restart on a different
process count can continue from the same point. Training shards have equal length (the tail of the
permutation that does not fill a step is dropped, a different tail each epoch). Evaluation shards are
padded to equal length with repeats of the first samples (at most ``w - 1``), because under DDP every rank
must run the same number of steps (each forward is a collective); samples carry their ``index`` so metrics
count each sample once.

``ResumableDataLoader`` implements the ``state_dict``/``load_state_dict`` pair that Lightning stores in its
checkpoints for stateful loaders; its state is the epoch and the number of samples consumed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler


class ShardedSampler(DistributedSampler):
    """One rank's share of a (seeded, per-epoch) permutation, with a resumable starting point.

    A ``DistributedSampler`` subclass so Lightning recognises it as already distributed and leaves it (and
    its loader) in place; Lightning calls ``set_epoch`` before each epoch.

    Args:
        length: number of samples in the dataset.
        rank, world_size: this process and the number of processes.
        shuffle: permute each epoch (training); ``False`` keeps the dataset order.
        seed: permutation seed; the permutation of epoch ``e`` depends only on ``(seed, e)``.
        drop_tail: make shards equal by dropping the tail (training); ``False`` pads with repeats instead
            (evaluation: every sample is seen).
    """

    def __init__(
        self,
        length: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        drop_tail: bool = True,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        # The parent only needs len(dataset); its own iteration (padding with repeats) is replaced below.
        super().__init__(
            range(length), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=True
        )
        self.length = length
        self.drop_tail = drop_tail
        self.consumed = 0  # samples of the current epoch already used, over all ranks
        self._resume_epoch: int | None = None

    def __len__(self) -> int:
        return self._shard_length(0)

    def _shard_length(self, consumed: int) -> int:
        remaining = max(self.length - consumed, 0)
        if self.drop_tail:
            return remaining // self.num_replicas
        return math.ceil(remaining / self.num_replicas)

    def resume(self, epoch: int, consumed: int) -> None:
        """Start the next iteration of ``epoch`` after its first ``consumed`` samples (over all ranks)."""
        self.epoch, self.consumed, self._resume_epoch = epoch, consumed, epoch

    def pending_offset(self) -> int:
        """Samples the next iteration will skip: the resume point if it is for the current epoch, else 0."""
        return self.consumed if self._resume_epoch == self.epoch else 0

    def permutation(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.length)
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.length, generator=generator)

    def __iter__(self) -> Iterator[int]:
        # A resume point applies to the first iteration of its epoch only; Lightning may move the epoch on
        # (set_epoch) between loading the state and iterating, which cancels it.
        consumed = self.pending_offset()
        self._resume_epoch, self.consumed = None, 0
        order = self.permutation(self.epoch)[consumed:]
        count = self._shard_length(consumed)
        padding = count * self.num_replicas - len(order)
        if padding > 0:
            order = torch.cat([order, order[:padding]])
        return iter(order[self.rank :: self.num_replicas][:count].tolist())


class ResumableDataLoader(DataLoader):
    """A DataLoader over a ``ShardedSampler`` whose position is saved in Lightning checkpoints.

    The position counts batches handed to the training loop (Lightning fetches one batch at a time from
    loaders that have a length), so a checkpoint taken after step ``k`` resumes with batch ``k + 1``.
    Worker processes start on the first ``next()``, not at ``iter()``: Lightning creates the iterator before
    it sets the epoch of a restarted run, and workers would otherwise draw indices from the wrong epoch.
    """

    sampler: ShardedSampler

    def __init__(self, dataset: Any, sampler: ShardedSampler, batch_size: int, **kwargs: Any):
        if not isinstance(sampler, ShardedSampler):
            raise TypeError(f"ResumableDataLoader needs a ShardedSampler, got {type(sampler).__name__}")
        super().__init__(dataset, sampler=sampler, batch_size=batch_size, drop_last=True, **kwargs)
        self._start = 0  # samples of the epoch consumed before the current iteration began
        self._served = 0  # batches handed out by the current iteration

    def __iter__(self) -> Iterator[Any]:
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        self._start = self.sampler.pending_offset()
        self._served = 0
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        consumed = self._start + self._served * self.batch_size * self.sampler.num_replicas
        return {"epoch": self.sampler.epoch, "consumed": consumed, "world_size": self.sampler.num_replicas}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume(int(state["epoch"]), int(state["consumed"]))


class EpochIndexSampler(ShardedSampler):
    """A ShardedSampler that yields ``(epoch, index)``, so training draws follow the sampler's epoch.

    The epoch travels with each index to whichever process loads the sample: persistent workers hold a
    copy of the dataset made when they started, so an epoch set on the main process's dataset would not
    reach them.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        indices = super().__iter__()
        return ((epoch, index) for index in indices)
