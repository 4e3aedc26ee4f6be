"""Split right-padded rows into a few groups of similar length, so each runs at its own width.

A training step stacks every row it runs (edit, rephrase, locality) into one right-padded batch; the frozen
bottom pass over that batch is the largest part of a step, and on the ``facts-qa`` rows a third of its
positions are padding at four edits per step (two fifths at ten). Rows are independent under causal
attention with right padding, so a row's hidden states at its real positions do not depend on how many
padding positions follow it: :func:`length_buckets` picks at most ``max_buckets`` groups of rows (by length,
contiguous in sorted order) that minimise the positions computed, counting each extra pass as ``pass_cost``
positions of work (the fixed cost of a forward call), and each group runs trimmed to its longest row. At four
edits per step, three groups compute about three quarters of the positions of one padded pass.
"""

from __future__ import annotations

import torch


def right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row's mask is ones followed by zeros (what trimming columns requires)."""
    if attention_mask.ndim != 2:
        return False
    mask = attention_mask.bool()
    return bool((mask[:, 1:] <= mask[:, :-1]).all())


def length_buckets(lengths: torch.Tensor, max_buckets: int = 3, pass_cost: int = 16) -> list[torch.Tensor]:
    """Row indices grouped by length: the grouping with the fewest computed positions plus pass costs.

    Args:
        lengths: ``[rows]`` real length of each row.
        max_buckets: at most this many groups (1: every row in one group).
        pass_cost: the cost of one more pass, in positions (a group costs ``rows × longest + pass_cost``).

    Returns:
        Index tensors, shortest rows first; together they cover every row exactly once.

    """
    n = int(lengths.numel())
    if n == 0:
        return []
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order].tolist()
    # the candidate cut points: after the last row of each distinct length (at most max_length of them)
    ends = [i + 1 for i in range(n) if i + 1 == n or sorted_lengths[i + 1] != sorted_lengths[i]]
    d = len(ends)
    inf = float("inf")
    # best[b][j]: cheapest cost of covering rows [0, ends[j]) with b + 1 groups; back[b][j] the previous cut
    best = [[inf] * d for _ in range(max_buckets)]
    back = [[-1] * d for _ in range(max_buckets)]
    for j, end in enumerate(ends):
        best[0][j] = end * sorted_lengths[end - 1] + pass_cost
    for b in range(1, max_buckets):
        for j in range(d):
            width = sorted_lengths[ends[j] - 1]
            for i in range(j):
                cost = best[b - 1][i] + (ends[j] - ends[i]) * width + pass_cost
                if cost < best[b][j]:
                    best[b][j], back[b][j] = cost, i
    groups = min(range(max_buckets), key=lambda b: best[b][d - 1])
    cuts, j = [], d - 1
    for b in range(groups, -1, -1):
        cuts.append(ends[j])
        j = back[b][j]
    cuts.reverse()
    starts = [0, *cuts[:-1]]
    return [order[s:e] for s, e in zip(starts, cuts, strict=True)]
