"""Sharded sampling: disjoint shards, the same samples per step for any process count, exact resume."""

import pytest
import torch
from torch.utils.data import Dataset

from sciml.data.sampling import ResumableDataLoader, ShardedSampler


class Indices(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return index


def test_training_shards_are_disjoint_equal_and_drop_only_the_tail():
    shards = [list(ShardedSampler(23, rank=r, world_size=4, seed=3)) for r in range(4)]
    assert all(len(shard) == 5 for shard in shards)
    flat = [i for shard in shards for i in shard]
    assert len(set(flat)) == 20 and set(flat) <= set(range(23))
    assert set(flat) == set(ShardedSampler(23, seed=3).permutation(0)[:20].tolist())


def test_evaluation_shards_cover_every_sample_with_at_most_world_minus_one_repeats():
    shards = [list(ShardedSampler(7, rank=r, world_size=3, shuffle=False, drop_tail=False)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    flat = [i for shard in shards for i in shard]
    assert set(flat) == set(range(7)) and len(flat) - 7 == 2
    assert shards[0][0] == 0  # the split's first sample is on rank 0 (its figures are drawn there)


def test_two_processes_with_batch_b_see_the_samples_of_one_process_with_batch_2b():
    single = ResumableDataLoader(Indices(21), ShardedSampler(21, seed=5), batch_size=4)
    ranks = [
        ResumableDataLoader(Indices(21), ShardedSampler(21, r, 2, seed=5), batch_size=2) for r in range(2)
    ]
    for epoch in (0, 1):
        for loader in (single, *ranks):
            loader.sampler.set_epoch(epoch)
        steps = list(zip(single, *ranks))
        assert len(steps) == 5
        for one, first, second in steps:
            assert sorted(one.tolist()) == sorted(first.tolist() + second.tolist())


def test_epochs_are_different_permutations_of_the_same_seed():
    sampler = ShardedSampler(50, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(list(sampler)) == sorted(first)
    assert list(ShardedSampler(50, seed=1)) == first


@pytest.mark.parametrize("workers", [0, 1])
def test_a_loader_restored_mid_epoch_continues_with_the_next_batch(workers):
    def loader():
        return ResumableDataLoader(Indices(30), ShardedSampler(30, seed=2), batch_size=4, num_workers=workers)

    reference = loader()
    reference.sampler.set_epoch(3)
    expected = [batch.tolist() for batch in reference]

    interrupted = loader()
    interrupted.sampler.set_epoch(3)
    iterator = iter(interrupted)
    seen = [next(iterator).tolist() for _ in range(3)]
    state = interrupted.state_dict()
    assert state == {"epoch": 3, "consumed": 12, "world_size": 1}

    resumed = loader()
    resumed.load_state_dict(state)
    iterator = iter(resumed)  # as Lightning does: iterator first, then the epoch
    resumed.sampler.set_epoch(3)
    rest = [batch.tolist() for batch in iterator]
    assert seen + rest == expected
    assert resumed.state_dict()["consumed"] == 28  # 7 full batches of the 30 samples
    resumed.sampler.set_epoch(4)
    assert len(list(resumed)) == 7  # the resume point applied to one epoch only


def test_a_resume_point_of_another_epoch_is_ignored():
    sampler = ShardedSampler(10, seed=0)
    sampler.resume(epoch=2, consumed=6)
    sampler.set_epoch(3)
    assert len(list(sampler)) == 10


def test_two_processes_resume_where_one_left_off():
    """Samples are consumed as a prefix of the permutation, so the process count may change at a restart."""
    one = ResumableDataLoader(Indices(24), ShardedSampler(24, seed=4), batch_size=4)
    iterator = iter(one)
    consumed = [next(iterator).tolist() for _ in range(2)]
    state = one.state_dict()
    rest = []
    for rank in range(2):
        loader = ResumableDataLoader(Indices(24), ShardedSampler(24, rank, 2, seed=4), batch_size=2)
        loader.load_state_dict(state)
        rest += [i for batch in loader for i in batch.tolist()]
    flat = [i for batch in consumed for i in batch]
    assert sorted(flat + rest) == list(range(24))


def test_loader_requires_a_sharded_sampler():
    with pytest.raises(TypeError, match="ShardedSampler"):
        ResumableDataLoader(Indices(4), torch.utils.data.SequentialSampler(range(4)), batch_size=2)
