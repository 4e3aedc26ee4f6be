import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mendlight.nn import WelfordNormalizer, WelfordStats, batch_stats, merge_rank_increments, merge_stats

DIM = 5
SIZES = [1, 7, 3, 20, 2, 1, 11]


def _batches(seed=0, sizes=SIZES, dim=DIM):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, dim, generator=g) * 2.5 + 4.0 for n in sizes]


def sequential_welford(rows):
    """docs/algorithm.md §1.4, row by row, in float64."""
    mu = s = None
    k = 0
    for x in rows.double():
        if k == 0:
            mu, s, k = x.clone(), torch.zeros_like(x), 1
        else:
            k += 1
            new_mu = mu + (x - mu) / k
            s = s + (x - mu) * (x - new_mu)
            mu = new_mu
    return k, mu, s


def _close(a, b):
    torch.testing.assert_close(a.double(), b.double(), rtol=1e-5, atol=1e-5)


def test_uneven_batches_match_torch_mean_and_std():
    norm = WelfordNormalizer(DIM)
    batches = _batches()
    for b in batches:
        norm.update(b)
    rows = torch.cat(batches).double()
    assert norm.count.dtype == torch.int64 and norm.count.shape == ()
    assert int(norm.count) == rows.shape[0]
    assert norm.mean.dtype == torch.float32 and norm.m2.dtype == torch.float32
    _close(norm.mean, rows.mean(0))
    _close(norm.std, rows.std(0, unbiased=True))


def test_matches_sequential_welford_row_by_row():
    norm = WelfordNormalizer(DIM)
    batches = _batches(seed=1)
    for b in batches:
        norm.update(b)
    k, mu, s = sequential_welford(torch.cat(batches))
    assert int(norm.count) == k
    _close(norm.mean, mu)
    _close(norm.m2, s)
    _close(norm.std, (s / (k - 1)).sqrt())


def test_single_row_batches_equal_sequential_exactly_enough():
    rows = _batches(seed=2, sizes=[30])[0]
    norm = WelfordNormalizer(DIM)
    for r in rows:
        norm.update(r[None])
    k, mu, s = sequential_welford(rows)
    assert int(norm.count) == k
    _close(norm.mean, mu)
    _close(norm.m2, s)


def test_state_dict_round_trip_keeps_count():
    norm = WelfordNormalizer(DIM)
    for b in _batches():
        norm.update(b)
    sd = norm.state_dict()
    assert set(sd) == {"count", "mean", "m2"}
    other = WelfordNormalizer(DIM)
    other.load_state_dict(sd)
    assert torch.equal(other.count, norm.count)
    assert torch.equal(other.mean, norm.mean) and torch.equal(other.m2, norm.m2)
    x = torch.randn(4, DIM)
    assert torch.equal(other.normalize(x), norm.normalize(x))
    # The loaded state is the synced base; nothing is pending for the next sync.
    assert torch.equal(other.synced_stats.mean, norm.mean)
    assert int(other.increment.count) == 0
    # Continuing to update after reload equals never having stopped.
    extra = torch.randn(6, DIM)
    norm.update(extra)
    other.update(extra)
    assert torch.equal(other.mean, norm.mean) and torch.equal(other.m2, norm.m2)


def test_std_is_one_below_two_rows_and_normalize():
    norm = WelfordNormalizer(DIM)
    assert not norm.initialized
    assert torch.equal(norm.std, torch.ones(DIM))
    with pytest.raises(RuntimeError, match="train the editor"):
        norm.normalize(torch.randn(3, DIM))
    row = torch.randn(1, DIM)
    norm.update(row)
    assert norm.initialized
    assert torch.equal(norm.std, torch.ones(DIM))
    x = torch.randn(3, DIM)
    torch.testing.assert_close(norm.normalize(x), (x - row) / (1 + 1e-7))
    norm.update(torch.randn(4, DIM))
    x = torch.randn(3, DIM)
    torch.testing.assert_close(norm.normalize(x, eps=0.1), (x - norm.mean) / (norm.std + 0.1))


def test_empty_update_is_noop_and_shape_checked():
    norm = WelfordNormalizer(DIM)
    norm.update(torch.empty(0, DIM))
    assert int(norm.count) == 0
    with pytest.raises(ValueError):
        norm.update(torch.randn(3, DIM + 1))


def test_merge_equals_update_and_handles_empty_sides():
    a, b = _batches(seed=3, sizes=[9, 4])
    ref = WelfordNormalizer(DIM)
    ref.update(torch.cat([a, b]))
    norm = WelfordNormalizer(DIM)
    norm.update(a)
    s = batch_stats(b)
    norm.merge_(s.count, s.mean, s.m2)
    assert int(norm.count) == 13
    _close(norm.mean, ref.mean)
    _close(norm.m2, ref.m2)
    # merging empty statistics changes nothing; merging into empty gives the other side
    empty = WelfordStats(0, torch.zeros(DIM), torch.zeros(DIM))
    m = merge_stats(s, empty)
    assert int(m.count) == 4 and torch.equal(m.mean, s.mean) and torch.equal(m.m2, s.m2)
    m = merge_stats(empty, s)
    assert int(m.count) == 4
    _close(m.mean, s.mean)
    _close(m.m2, s.m2)
    m = merge_stats(empty, empty)
    assert int(m.count) == 0 and torch.count_nonzero(m.mean) == 0
    assert WelfordNormalizer.merge_stats is merge_stats
    with pytest.raises(ValueError):
        norm.merge_(3, torch.zeros(DIM + 1), torch.zeros(DIM))


def test_multi_rank_merge_of_increments_equals_all_rows():
    world = 3
    first = _batches(seed=4, sizes=[5, 8, 2])
    later = _batches(seed=5, sizes=[3, 1, 12])
    ranks = [WelfordNormalizer(DIM) for _ in range(world)]
    # Round 1: each rank sees its own rows, then they "sync" by merging increments.
    for r, b in zip(ranks, first, strict=True):
        r.update(b)
    merged = merge_rank_increments(ranks[0].synced_stats, [r.increment for r in ranks])
    for r in ranks:  # simulate what sync_across_ranks_ does after the all-gather
        r.load_state_dict({"count": merged.count.clone(), "mean": merged.mean, "m2": merged.m2})
    # Round 2: more uneven local rows since the last sync.
    for r, b in zip(ranks, later, strict=True):
        r.update(b)
    for r, b in zip(ranks, later, strict=True):
        assert int(r.increment.count) == b.shape[0]
        _close(r.increment.mean, b.mean(0))
    merged = merge_rank_increments(ranks[1].synced_stats, [r.increment for r in ranks])
    rows = torch.cat(first + later).double()
    assert int(merged.count) == rows.shape[0]
    _close(merged.mean, rows.mean(0))
    _close(merged.m2, ((rows - rows.mean(0)) ** 2).sum(0))


def test_sync_is_noop_in_single_process():
    norm = WelfordNormalizer(DIM)
    norm.update(torch.randn(4, DIM))
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    norm.sync_across_ranks_()
    for k, v in norm.state_dict().items():
        assert torch.equal(v, before[k])


def _sync_worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        norm = WelfordNormalizer(DIM)
        for step in range(2):
            for b in _batches(seed=10 * step + rank, sizes=[rank + 2, 3 * rank + 1]):
                norm.update(b)
            norm.sync_across_ranks_()
        torch.save(norm.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_sync_across_two_gloo_ranks():
    world = 2
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_sync_worker, args=(world, os.path.join(tmp, "init"), tmp), nprocs=world, join=True)
        states = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(world)]
    rows = torch.cat(
        [b for step in range(2) for r in range(world) for b in _batches(10 * step + r, [r + 2, 3 * r + 1])]
    ).double()
    for st in states:
        for k in st:
            assert torch.equal(st[k], states[0][k])  # identical on every rank
    assert int(states[0]["count"]) == rows.shape[0]
    _close(states[0]["mean"], rows.mean(0))
    _close(states[0]["m2"], ((rows - rows.mean(0)) ** 2).sum(0))
