"""The order in which records are drawn: a resumable training shuffle and an exact evaluation split.

Both samplers know every process of a multi-process (DDP) run, so Lightning keeps them instead of wrapping
them in its own ``DistributedSampler``, which pads with repeated records:

* :class:`ResumableShuffleSampler` shuffles the training records with a permutation fixed by ``(seed,
  epoch)`` and cuts it into *global batches* of ``batch_size × num_replicas`` records; process ``r`` takes
  its ``batch_size`` records of each. A resumed run starts at the global batch it stopped at, and the epoch
  keeps its full length, so Lightning's restored batch counter and the data agree.
* :class:`EvalUnitSampler` keeps the evaluation records in file order, cut into *units* — a batch of
  simultaneous edits, or the batches of one sequential chain — and deals the units to the processes in turn.
  Every record is evaluated exactly once, in the batch it would have on one process, so the metrics equal the
  one-process run's. Processes that hold fewer batches get *padding* indices (``>= n``) that the data module
  turns into batches the editor skips: every process then runs the same number of steps, which DDP needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import DistributedSampler


class ResumableShuffleSampler(DistributedSampler):
    """Shuffle ``range(n)`` by ``(seed, epoch)``; give one process its share of each global batch.

    Lightning calls :meth:`set_epoch` at every epoch start. After a resume the data module calls
    :meth:`resume_at` (the interrupted epoch and the global batches already consumed in it), so training
    continues with exactly the records an uninterrupted run would have seen next. An epoch holds
    ``n // (batch_size × num_replicas)`` global batches (a short last one is dropped, as with ``drop_last``);
    :func:`len` is always the full epoch's share of this process, also right after a resume.

    Args:
        n: number of records.
        seed: base seed of the permutations.
        batch_size: records per batch of one process (the data module's ``n_edits``).
        num_replicas: number of processes.
        rank: this process.

    """

    def __init__(self, n: int, seed: int, batch_size: int = 1, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        # DistributedSampler.__init__ needs a dataset and a process group; only its type matters to Lightning
        self.n = n
        self.seed = seed
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    @property
    def batches_per_epoch(self) -> int:
        """Global batches (optimizer steps) in one epoch."""
        return self.n // (self.batch_size * self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (called by Lightning)."""
        self.epoch = epoch

    def order(self) -> list[int]:
        """The full permutation of the current epoch (the same on every process)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=generator).tolist()

    def resume_at(self, epoch: int, batch: int) -> None:
        """Start the next pass over ``epoch`` at its global batch ``batch`` (a resumed run)."""
        self.epoch = epoch
        self._resume = (epoch, batch)

    @property
    def start_batch(self) -> int:
        """The global batch the next pass starts at: the resume position if it is for this epoch, else 0."""
        return self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0

    def __iter__(self) -> Iterator[int]:
        # The position is tied to its epoch, not to the first iterator made: a run resumed at the very end of
        # an epoch makes an iterator for that epoch that is never advanced (the batch sampler starts lazily).
        start = self.start_batch
        if self._resume is not None and self._resume[0] <= self.epoch:
            self._resume = None  # one pass only
        order, k = self.order(), self.batch_size
        size = k * self.num_replicas
        firsts = (b * size + self.rank * k for b in range(start, self.batches_per_epoch))
        return iter([i for first in firsts for i in order[first : first + k]])

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size


class EvalUnitSampler(DistributedSampler):
    """Evaluation records in file order, in units dealt to the processes in turn, padded to equal batches.

    A unit is ``unit_batches`` consecutive batches of ``batch_size`` records (one batch, or one sequential
    chain). Unit ``u`` goes to process ``u mod num_replicas``. Indices ``>= n`` are padding: a short last
    batch on a process that also needs padding batches is first filled up to ``batch_size`` indices (the data
    module drops padding rows from a batch, so the real records keep their batch), then whole padding batches
    follow until the process holds as many batches as the busiest one. With one process there is no padding.

    Args:
        n: number of records.
        batch_size: records per batch (simultaneous edits).
        unit_batches: batches per unit (the sequential chain length, 1 otherwise).
        num_replicas: number of processes.
        rank: this process.

    """

    def __init__(
        self, n: int, batch_size: int, unit_batches: int = 1, num_replicas: int = 1, rank: int = 0
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.n = n
        self.batch_size = batch_size
        self.unit_batches = max(1, unit_batches)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    @property
    def unit_records(self) -> int:
        """Records per unit."""
        return self.batch_size * self.unit_batches

    def _units(self, rank: int) -> list[int]:
        return list(range(rank, math.ceil(self.n / self.unit_records), self.num_replicas))

    def _real_indices(self, rank: int) -> list[int]:
        size = self.unit_records
        return [i for u in self._units(rank) for i in range(u * size, min(self.n, (u + 1) * size))]

    def _batches(self, rank: int) -> int:
        return math.ceil(len(self._real_indices(rank)) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Evaluation order does not depend on the epoch."""
        self.epoch = epoch

    def indices(self) -> list[int]:
        """Indices of this process: its units' records, then padding (``>= n``) up to the common batches."""
        real = self._real_indices(self.rank)
        k = self.batch_size
        fill = -len(real) % k
        most = max(self._batches(r) for r in range(self.num_replicas))
        padding = fill + (most - self._batches(self.rank)) * k
        if self.num_replicas == 1 or padding == fill:
            fill = padding = 0  # nothing follows a short last batch: leave it short, as on one process
        return real + list(range(self.n, self.n + padding))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return len(self.indices())


#: Keys an evaluation row gains in :class:`EvalSplit`: its position in the split, or that it is padding.
POSITION_KEY = "_position"
PADDING_KEY = "_padding"


class EvalSplit(TorchDataset):
    """An evaluation split as the data loader reads it: rows with their position; indices ``>= n`` pad."""

    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index >= len(self.data):
            return {PADDING_KEY: True}
        return {**self.data[index], POSITION_KEY: index}
