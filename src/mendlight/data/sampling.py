"""A seeded shuffling sampler that resumes mid-epoch from a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableShuffleSampler(Sampler[int]):
    """Shuffle ``range(n)`` with a permutation fixed by ``(seed, epoch)``; optionally start mid-epoch.

    Lightning calls :meth:`set_epoch` at every epoch start. After a resume the data module sets
    :attr:`start` (records already consumed in the interrupted epoch), so training continues with exactly
    the records an uninterrupted run would have seen next.

    Args:
        n: number of records.
        seed: base seed of the permutations.

    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (called by Lightning)."""
        self.epoch = epoch

    def order(self) -> list[int]:
        """The full permutation of the current epoch."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        yield from self.order()[start:]

    def __len__(self) -> int:
        return self.n - self.start
