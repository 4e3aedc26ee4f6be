"""Running per-feature mean and standard deviation (Welford), mergeable across batches and DDP ranks.

MEND normalises each edited layer's input ``u`` and output gradient ``δ`` with statistics accumulated over
every token of every training edit seen so far (``docs/algorithm.md`` §1.4). The official code runs the
sequential Welford update row by row; :class:`WelfordNormalizer` gets the same numbers in one vectorised step
per batch with Chan et al.'s parallel merge::

    n = n_a + n_b,   d = μ_b − μ_a,   μ = μ_a + d · n_b / n,   M2 = M2_a + M2_b + d² · n_a n_b / n

Differences from the official code, on purpose:

* The count is a persistent buffer, so "initialised" is derived from it and survives a checkpoint reload
  (the original ``norm_init`` flag was not saved and resuming reset the statistics).
* With fewer than two rows the standard deviation is taken as 1 instead of raising, so a first training
  batch with a single non-zero row does not crash.
* :meth:`WelfordNormalizer.sync_across_ranks_` all-gathers the rows seen by every DDP rank since the last
  sync, so all ranks share the statistics of all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mendlight.errors import UserInputError

EMPTY_STATS_MESSAGE = (
    "normalisation statistics are empty: train the editor (mendlight fit) or load a trained checkpoint "
    "(--ckpt_path)"
)


class EmptyStatisticsError(UserInputError, RuntimeError):
    """An untrained editor was asked to normalise: it needs training or a trained checkpoint.

    A user's error (evaluating or applying MEND without ``--ckpt_path``), so ``mendlight`` reports it in one
    line.
    """


class WelfordStats(NamedTuple):
    """Sufficient statistics of a set of rows: row count, per-feature mean and sum of squared deviations.

    Attributes:
        count: Number of rows (int64 scalar tensor, or a Python int).
        mean: Per-feature mean, shape ``[dim]``.
        m2: Per-feature sum of squared deviations from the mean, shape ``[dim]``.

    """

    count: Tensor | int
    mean: Tensor
    m2: Tensor


def batch_stats(x: Tensor) -> WelfordStats:
    """Exact (two-pass) statistics of the rows of ``x``.

    Args:
        x: Rows, shape ``[N, dim]``.

    Returns:
        The :class:`WelfordStats` of the ``N`` rows, in ``x``'s dtype (an empty ``x`` gives a zero count).

    """
    n = x.shape[0]
    count = torch.tensor(n, dtype=torch.int64, device=x.device)
    if n == 0:
        zeros = x.new_zeros(x.shape[1:])
        return WelfordStats(count, zeros, zeros.clone())
    mean = x.mean(dim=0)
    m2 = (x - mean).square().sum(dim=0)
    return WelfordStats(count, mean, m2)


def merge_stats(a: WelfordStats, b: WelfordStats) -> WelfordStats:
    """Merge the statistics of two disjoint sets of rows (Chan et al.'s parallel update).

    The arithmetic runs in float64 and the result has ``a.mean``'s dtype. Either side may be empty (count 0);
    two empty sides give an empty result. No value is read back to the host.

    Args:
        a: Statistics of the first set.
        b: Statistics of the second set.

    Returns:
        The statistics of the union.

    """
    device, dtype = a.mean.device, a.mean.dtype
    na = torch.as_tensor(a.count, dtype=torch.int64, device=device)
    nb = torch.as_tensor(b.count, dtype=torch.int64, device=device)
    n = na + nb
    frac_b = nb.double() / n.clamp(min=1).double()  # n_b / n, 0 when both are empty
    mean_a, mean_b = a.mean.double(), b.mean.to(device=device, dtype=torch.float64)
    delta = mean_b - mean_a
    mean = mean_a + delta * frac_b
    m2 = a.m2.double() + b.m2.to(device=device, dtype=torch.float64) + delta.square() * (na.double() * frac_b)
    return WelfordStats(n, mean.to(dtype), m2.to(dtype))


def merge_rank_increments(base: WelfordStats, increments: Sequence[WelfordStats]) -> WelfordStats:
    """Combine the last synced state with every rank's increment since then, in rank order.

    This is the pure math behind :meth:`WelfordNormalizer.sync_across_ranks_`: every rank runs it on the same
    gathered inputs in the same order, so every rank gets the same result, equal to the statistics of all
    rows seen by all ranks.

    Args:
        base: The statistics all ranks shared after the last sync.
        increments: One :class:`WelfordStats` per rank: the rows that rank saw since the last sync.

    Returns:
        The merged statistics.

    """
    total = base
    for inc in increments:
        total = merge_stats(total, inc)
    return total


class WelfordNormalizer(nn.Module):
    """Per-feature running mean and unbiased standard deviation, used to normalise rows.

    The persistent buffers ``count`` (int64 scalar), ``mean`` and ``m2`` (float32 ``[dim]``) go into the
    state dict, so a checkpoint restores the statistics and their row count exactly.

    For multi-GPU training the module also keeps two non-persistent copies: the state shared by all ranks
    at the last :meth:`sync_across_ranks_` (``_base_*``) and the statistics of the rows this rank has added
    since (``_inc_*``). The increment is kept separately rather than recovered by "un-merging" the base
    from the current state, which would lose precision through cancellation. Loading a state dict
    makes the loaded statistics the synced base and empties the increment.
    """

    merge_stats = staticmethod(merge_stats)

    def __init__(self, dim: int) -> None:
        """Create empty statistics.

        Args:
            dim: Number of features.

        """
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        for prefix, persistent in (("", True), ("_base_", False), ("_inc_", False)):
            self.register_buffer(prefix + "count", torch.zeros((), dtype=torch.int64), persistent=persistent)
            self.register_buffer(prefix + "mean", torch.zeros(dim), persistent=persistent)
            self.register_buffer(prefix + "m2", torch.zeros(dim), persistent=persistent)

    # ------------------------------------------------------------------ state helpers
    @property
    def stats(self) -> WelfordStats:
        """The current statistics as a :class:`WelfordStats` (views of the buffers)."""
        return WelfordStats(self.count, self.mean, self.m2)

    @property
    def increment(self) -> WelfordStats:
        """Statistics of the rows this process added since the last :meth:`sync_across_ranks_` (or load)."""
        return self._get("_inc_")

    @property
    def synced_stats(self) -> WelfordStats:
        """The statistics all ranks shared at the last :meth:`sync_across_ranks_` (or load)."""
        return self._get("_base_")

    def _get(self, prefix: str) -> WelfordStats:
        return WelfordStats(
            getattr(self, prefix + "count"), getattr(self, prefix + "mean"), getattr(self, prefix + "m2")
        )

    def _set(self, prefix: str, stats: WelfordStats) -> None:
        getattr(self, prefix + "count").copy_(torch.as_tensor(stats.count))
        getattr(self, prefix + "mean").copy_(stats.mean)
        getattr(self, prefix + "m2").copy_(stats.m2)

    def _mark_synced(self) -> None:
        with torch.no_grad():
            self._set("_base_", self.stats)
            self._set("_inc_", WelfordStats(0, torch.zeros_like(self.mean), torch.zeros_like(self.m2)))

    def _merge_local(self, stats: WelfordStats) -> None:
        self._set("", merge_stats(self.stats, stats))
        self._set("_inc_", merge_stats(self._get("_inc_"), stats))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._mark_synced()

    # ------------------------------------------------------------------ public API
    @property
    def initialized(self) -> bool:
        """Whether at least one row has been seen (``count > 0``)."""
        return bool(self.count.item() > 0)

    @property
    def std(self) -> Tensor:
        """Unbiased per-feature standard deviation ``sqrt(m2 / (count − 1))``; ones while ``count < 2``.

        The official code raised on a first batch with a single row; returning ones (so normalisation only
        centres) avoids that crash.
        """
        denom = (self.count - 1).clamp(min=1).to(self.m2.dtype)
        std = (self.m2.clamp(min=0) / denom).sqrt()
        return torch.where(self.count >= 2, std, torch.ones_like(std))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge a batch of rows into the running statistics.

        Equivalent, up to float rounding, to the sequential Welford update of each row in order.

        Args:
            x: Rows, shape ``[N, dim]`` (leading dimensions are flattened). An empty batch is a no-op.

        """
        if x.shape[-1] != self.dim:
            raise ValueError(f"expected rows of width {self.dim}, got shape {tuple(x.shape)}")
        x = x.reshape(-1, self.dim)
        if x.shape[0] == 0:
            return
        self._merge_local(batch_stats(x.to(self.mean.dtype)))

    @torch.no_grad()
    def merge_(self, count: int | Tensor, mean: Tensor, m2: Tensor) -> None:
        """Merge externally computed statistics of other rows into this module.

        They count as rows seen locally (they join the increment of the next :meth:`sync_across_ranks_`).

        Args:
            count: Number of rows.
            mean: Their per-feature mean, shape ``[dim]``.
            m2: Their per-feature sum of squared deviations, shape ``[dim]``.

        """
        if mean.shape != (self.dim,) or m2.shape != (self.dim,):
            raise ValueError(
                f"mean and m2 must have shape ({self.dim},), got {tuple(mean.shape)} and {tuple(m2.shape)}"
            )
        self._merge_local(WelfordStats(count, mean, m2))

    def normalize(self, x: Tensor, eps: float = 1e-7) -> Tensor:
        """Return ``(x − mean) / (std + eps)``.

        Args:
            x: Rows, shape ``[..., dim]``.
            eps: Added to the standard deviation.

        Returns:
            The normalised rows, same shape as ``x``.

        Raises:
            EmptyStatisticsError: (a ``RuntimeError``) If no statistics have been accumulated yet.

        """
        if not self.initialized:
            raise EmptyStatisticsError(EMPTY_STATS_MESSAGE)
        return (x - self.mean) / (self.std + eps)

    @torch.no_grad()
    def sync_across_ranks_(self) -> None:
        """Share every rank's new rows so that all ranks end with the statistics of all rows.

        A collective call: under ``torch.distributed`` with world size > 1 every rank must call it, the same
        number of times. Each rank's increment since the last sync is all-gathered, merged in rank order
        into the last synced state (:func:`merge_rank_increments`), and the result becomes both the current
        and the synced state. It is a no-op in a single process.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        inc = self._get("_inc_")
        packed = torch.cat([inc.count.double().reshape(1), inc.mean.double(), inc.m2.double()])
        gathered = [torch.empty_like(packed) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, packed)
        increments = [
            WelfordStats(g[0].round().long(), g[1 : 1 + self.dim], g[1 + self.dim :]) for g in gathered
        ]
        self._set("", merge_rank_increments(self._get("_base_"), increments))
        self._mark_synced()

    def extra_repr(self) -> str:
        """Summarise the width for ``repr``."""
        return f"dim={self.dim}"
