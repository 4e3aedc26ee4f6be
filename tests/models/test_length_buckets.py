import itertools

import pytest
import torch

from mendlight.models.length_buckets import length_buckets, right_padded


def _cost(lengths, groups, pass_cost):
    return sum(len(g) * max(lengths[i] for i in g) + pass_cost for g in groups)


def _brute_force(lengths, max_buckets, pass_cost):
    """The cheapest split of the sorted rows into at most max_buckets contiguous groups, by enumeration."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = float("inf")
    for b in range(1, max_buckets + 1):
        for cuts in itertools.combinations(range(1, len(order)), b - 1):
            bounds = [0, *cuts, len(order)]
            groups = [order[s:e] for s, e in itertools.pairwise(bounds)]
            best = min(best, _cost(lengths, groups, pass_cost))
    return best


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("max_buckets", [1, 2, 3, 4])
def test_buckets_are_the_cheapest_split_and_cover_every_row_once(seed, max_buckets):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 13, (1,), generator=g))
    lengths = torch.randint(1, 30, (n,), generator=g)
    groups = length_buckets(lengths, max_buckets=max_buckets, pass_cost=7)
    assert 1 <= len(groups) <= max_buckets
    assert sorted(torch.cat(groups).tolist()) == list(range(n))
    as_lists = [g.tolist() for g in groups]
    assert _cost(lengths.tolist(), as_lists, 7) == _brute_force(lengths.tolist(), max_buckets, 7)
    widths = [int(lengths[g].max()) for g in groups]
    assert widths == sorted(widths)  # shortest rows first


def test_a_high_pass_cost_keeps_one_group_and_equal_lengths_never_split():
    lengths = torch.tensor([3, 20, 4, 19])
    assert [g.tolist() for g in length_buckets(lengths, pass_cost=1000)] == [[0, 2, 3, 1]]
    assert len(length_buckets(lengths, pass_cost=1)) == 2  # {3, 4} and {19, 20}
    assert len(length_buckets(torch.full((9,), 5), pass_cost=0)) == 1
    assert length_buckets(torch.tensor([], dtype=torch.long)) == []


def test_right_padding_is_recognised():
    assert right_padded(torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]]))
    assert not right_padded(torch.tensor([[0, 1, 1], [1, 1, 1]]))  # left padding
    assert not right_padded(torch.tensor([[1, 0, 1]]))  # a hole
