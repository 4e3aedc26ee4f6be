"""The training shuffle and the evaluation split across processes (mendlight.data.sampling)."""

from __future__ import annotations

import itertools

import pytest

from mendlight.data.sampling import EvalUnitSampler, ResumableShuffleSampler


def _chunks(indices: list[int], k: int) -> list[list[int]]:
    return [indices[i : i + k] for i in range(0, len(indices), k)]


# ------------------------------------------------------------------------------------------ training shuffle
def test_shuffle_is_fixed_by_seed_and_epoch():
    a, b = ResumableShuffleSampler(10, seed=4), ResumableShuffleSampler(10, seed=4)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(3)
    assert list(a) != list(b)


@pytest.mark.parametrize(("n", "k", "world"), [(10, 1, 1), (10, 3, 1), (11, 2, 2), (20, 3, 3)])
def test_processes_share_each_global_batch(n, k, world):
    samplers = [ResumableShuffleSampler(n, 7, k, world, r) for r in range(world)]
    for s in samplers:
        s.set_epoch(1)
    order = samplers[0].order()
    steps = n // (k * world)
    per_rank = [_chunks(list(s), k) for s in samplers]
    assert all(len(batches) == steps for batches in per_rank)
    assert all(len(s) == steps * k for s in samplers)
    for step in range(steps):  # global batch `step` is the next k × world records of the shuffle
        drawn = [i for r in range(world) for i in per_rank[r][step]]
        assert drawn == order[step * k * world : (step + 1) * k * world]


def test_resume_mid_epoch_continues_the_epoch_then_starts_the_next_in_full():
    full = ResumableShuffleSampler(12, 3, batch_size=2)
    full.set_epoch(1)
    order = list(full)
    resumed = ResumableShuffleSampler(12, 3, batch_size=2)
    resumed.resume_at(1, 4)  # four batches of epoch 1 already trained
    assert len(resumed) == 12  # the epoch's full length, as Lightning's restored batch counter expects
    assert list(resumed) == order[8:]
    assert list(resumed) == order  # the resume position applies once
    resumed.set_epoch(2)
    assert sorted(resumed) == list(range(12))


def test_resume_at_the_end_of_an_epoch_does_not_cut_the_next_epoch():
    """A run resumed after the last batch of epoch 0 makes an epoch-0 iterator it never advances."""
    sampler = ResumableShuffleSampler(8, 0)
    sampler.resume_at(0, 8)
    iter(sampler)  # the epoch-0 pass Lightning ends at once
    sampler.set_epoch(1)
    expected = ResumableShuffleSampler(8, 0)
    expected.set_epoch(1)
    assert list(sampler) == list(expected)  # epoch 1 in full

    lazy = ResumableShuffleSampler(8, 0)
    lazy.resume_at(0, 8)  # no iterator at all for epoch 0 (the batch sampler starts it lazily)
    lazy.set_epoch(1)
    assert list(lazy) == list(expected)


# ------------------------------------------------------------------------------------------ evaluation split
CASES = list(itertools.product([1, 2, 5, 7, 10, 13], [1, 2, 4], [1, 3], [1, 2, 3]))


@pytest.mark.parametrize(("n", "k", "chain", "world"), CASES)
def test_every_record_once_in_its_one_process_batch(n, k, chain, world):
    single = _chunks(list(range(n)), k)  # the batches of a one-process run
    per_rank = [EvalUnitSampler(n, k, chain, world, r).indices() for r in range(world)]
    batches = [_chunks(indices, k) for indices in per_rank]
    assert len({len(b) for b in batches}) == 1  # every process runs the same number of batches
    real_batches = []
    for rank_batches in batches:
        for batch in rank_batches:
            real = [i for i in batch if i < n]
            if real:
                real_batches.append(real)
            assert all(i >= n for i in batch[len(real) :])  # padding only after the real records
    assert sorted(real_batches) == single  # each one-process batch once, with the same records
    for r, indices in enumerate(per_rank):  # a chain of `chain` batches stays on one process
        units = {i // (k * chain) for i in indices if i < n}
        assert all(u % world == r for u in units)


def test_one_process_has_no_padding():
    assert EvalUnitSampler(7, 2).indices() == list(range(7))
    assert len(EvalUnitSampler(7, 2)) == 7


def test_padding_fills_a_short_batch_only_when_batches_follow_it():
    # 9 records in batches of 4 over 2 processes: process 0 holds [0-3] and the short [8]; process 1 holds
    # [4-7] and needs one padding batch; the short batch is the last on its process and stays short.
    assert EvalUnitSampler(9, 4, 1, 2, 0).indices() == [0, 1, 2, 3, 8]
    assert EvalUnitSampler(9, 4, 1, 2, 1).indices() == [4, 5, 6, 7, 9, 10, 11, 12]
    # 10 records, sequential chains of 3 batches of 1 over 2 processes: process 1 ends with the short chain
    # [9] and then needs two padding batches.
    assert EvalUnitSampler(10, 1, 3, 2, 1).indices() == [3, 4, 5, 9, 10, 11]
