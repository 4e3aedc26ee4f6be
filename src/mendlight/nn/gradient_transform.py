"""MEND's gradient transform: normalise a layer's gradient factors (u, δ) and map them through the editor net.

For one edited weight ``W`` (``in → out``) the gradient of a loss is ``Σ_i δ_i u_iᵀ`` over token rows ``i``,
with ``u`` the layer input and ``δ`` the gradient w.r.t. the layer output. :class:`GradientTransform`
(``docs/algorithm.md`` §1.4, §1.6) drops padding rows, normalises both factors with running statistics, and
transforms them with identity-initialised low-rank MLPs; :func:`pseudo_gradient` sums the transformed
outer products into an update laid out like the weight (§1.8).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from mendlight.errors import ConfigError
from mendlight.nn.lowrank import LowRankIdentityMLP
from mendlight.nn.normalization import WelfordNormalizer


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Return a context that disables autocast on ``device`` so the editor computes in float32."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


class GradientTransform(nn.Module):
    """Normalise and transform the gradient factors of one weight shape (MEND's ``GradientTransform``).

    Networks by variant (``docs/algorithm.md`` §1.6), each a
    :class:`~mendlight.nn.lowrank.LowRankIdentityMLP`:

    * ``combine=True`` (default): one net ``combined_net`` on ``x_dim + delta_dim`` applied to
      ``cat(ū, δ̄)``, whose output is split back into ``ũ`` and ``δ̃``.
    * ``combine=False`` and no one-sided flag: ``x_net`` on ``ū`` and ``delta_net`` on ``δ̄``.
    * ``one_sided=True`` ("only smaller"): only the smaller of ``x_dim``/``delta_dim`` is transformed
      (``u`` on a tie); the other side passes through normalised.
    * ``x_only=True`` / ``delta_only=True``: only that side is transformed.

    Absent networks are ``None``. ``u_norm`` and ``delta_norm`` are the :class:`WelfordNormalizer` of each
    side; they are updated only in training mode, from the kept rows, before normalising.
    """

    def __init__(
        self,
        x_dim: int,
        delta_dim: int,
        rank: int = 1920,
        n_hidden: int = 1,
        n_modes: int | None = None,
        init: str = "id",
        norm: bool = True,
        combine: bool = True,
        one_sided: bool = False,
        x_only: bool = False,
        delta_only: bool = False,
    ) -> None:
        """Build the normalisers and the editor network(s).

        Args:
            x_dim: Width of ``u``, the edited layer's input (its in-features).
            delta_dim: Width of ``δ``, the gradient w.r.t. the layer's output (its out-features).
            rank: Rank of every low-rank layer (clipped to the layer width).
            n_hidden: Hidden layers per editor MLP (each MLP has ``n_hidden + 1`` layers).
            n_modes: Number of per-layer FiLM modes (edited weights sharing this transform); ``None`` for no
                FiLM.
            init: ``"id"`` (identity at init) or ``"xavier"`` (the "No ID init" ablation).
            norm: Normalise ``u`` and ``δ`` with the running statistics (``False``: the "No norm" ablation;
                the statistics are still accumulated).
            combine: Use one MLP on the concatenation ``[ū, δ̄]`` (the paper's default).
            one_sided: Transform only the smaller side ("Only smaller"); requires ``combine=False``.
            x_only: Transform only ``u`` ("Only u"); requires ``combine=False``.
            delta_only: Transform only ``δ`` ("Only δ"); requires ``combine=False``.

        """
        super().__init__()
        n_sided = int(one_sided) + int(x_only) + int(delta_only)
        if combine and n_sided:
            raise ConfigError(
                "GradientTransform: combine=True cannot be used with one_sided, x_only or delta_only: "
                "set combine=False to transform a single side"
            )
        if n_sided > 1:
            raise ConfigError(
                "GradientTransform: one_sided, x_only and delta_only are mutually exclusive: set at most one"
            )
        self.x_dim = x_dim
        self.delta_dim = delta_dim
        self.norm = norm
        self.combine = combine
        self.one_sided = one_sided
        self.x_only = x_only
        self.delta_only = delta_only
        self.u_norm = WelfordNormalizer(x_dim)
        self.delta_norm = WelfordNormalizer(delta_dim)

        def mlp(dim: int) -> LowRankIdentityMLP:
            return LowRankIdentityMLP(dim, rank, n_hidden=n_hidden, n_modes=n_modes, init=init)

        if one_sided:
            transform_x, transform_delta = x_dim <= delta_dim, x_dim > delta_dim
        else:
            transform_x = not combine and not delta_only
            transform_delta = not combine and not x_only
        self.combined_net = mlp(x_dim + delta_dim) if combine else None
        self.x_net = mlp(x_dim) if transform_x else None
        self.delta_net = mlp(delta_dim) if transform_delta else None

    def forward(self, u: Tensor, delta: Tensor, mode: int | None = None) -> tuple[Tensor, Tensor]:
        """Transform the gradient factors of one edited weight.

        The inputs are cast to float32 and the nets run with autocast disabled. Row ``i`` is kept only if
        ``u_i`` and ``δ_i`` both have a non-zero entry (this drops padding). In training mode the kept rows
        are merged into the statistics first, so they are included in their own normalisation.

        Args:
            u: Layer inputs, shape ``[N, x_dim]`` (leading dimensions are flattened).
            delta: Gradients w.r.t. the layer outputs, shape ``[N, delta_dim]`` (same rows as ``u``).
            mode: FiLM mode of the edited weight among those sharing this transform, or ``None``.

        Returns:
            ``(ũ, δ̃)`` for the kept rows, shapes ``[N_kept, x_dim]`` and ``[N_kept, delta_dim]``. With no kept
            row nothing is normalised and the outputs are empty.

        Raises:
            RuntimeError: If normalising with empty statistics (an untrained editor in eval mode).

        """
        if u.shape[-1] != self.x_dim or delta.shape[-1] != self.delta_dim:
            raise ValueError(
                f"expected u [..., {self.x_dim}] and delta [..., {self.delta_dim}], "
                f"got {tuple(u.shape)} and {tuple(delta.shape)}"
            )
        u = u.reshape(-1, self.x_dim).float()
        delta = delta.reshape(-1, self.delta_dim).float()
        if u.shape[0] != delta.shape[0]:
            raise ValueError(f"u and delta have different row counts: {u.shape[0]} vs {delta.shape[0]}")
        keep = (u != 0).any(dim=-1) & (delta != 0).any(dim=-1)
        u, delta = u[keep], delta[keep]

        with _autocast_off(u.device):
            if self.training:
                self.u_norm.update(u)
                self.delta_norm.update(delta)
            if self.norm and u.shape[0] > 0:
                u = self.u_norm.normalize(u)
                delta = self.delta_norm.normalize(delta)

            if self.combined_net is not None:
                out = self.combined_net(torch.cat([u, delta], dim=-1), mode)
                return out[:, : self.x_dim], out[:, self.x_dim :]
            u_t = self.x_net(u, mode) if self.x_net is not None else u
            d_t = self.delta_net(delta, mode) if self.delta_net is not None else delta
            return u_t, d_t

    @torch.no_grad()
    def sync_across_ranks_(self) -> None:
        """Synchronise both normalisers across DDP ranks.

        See :meth:`~mendlight.nn.normalization.WelfordNormalizer.sync_across_ranks_`; a collective call.
        """
        self.u_norm.sync_across_ranks_()
        self.delta_norm.sync_across_ranks_()

    def extra_repr(self) -> str:
        """Summarise the variant for ``repr``."""
        variant = (
            "combine"
            if self.combine
            else "one_sided"
            if self.one_sided
            else "x_only"
            if self.x_only
            else "delta_only"
            if self.delta_only
            else "separate"
        )
        return f"x_dim={self.x_dim}, delta_dim={self.delta_dim}, variant={variant}, norm={self.norm}"


def pseudo_gradient(u_t: Tensor, d_t: Tensor, conv1d: bool) -> Tensor:
    """Sum the outer products of transformed factors into an update laid out like the weight.

    ``Σ_i δ̃_i ũ_iᵀ``: a sum over rows, not a mean. Computed in float32 with autocast disabled.

    Args:
        u_t: Transformed inputs ``ũ``, shape ``[N, in]``.
        d_t: Transformed output gradients ``δ̃``, shape ``[N, out]``.
        conv1d: ``True`` for Hugging Face GPT-2 ``Conv1D`` weights stored ``[in, out]``; ``False`` for
            ``nn.Linear`` weights stored ``[out, in]``.

    Returns:
        The pseudo-gradient, shape ``[in, out]`` if ``conv1d`` else ``[out, in]``.

    """
    if u_t.shape[0] != d_t.shape[0]:
        raise ValueError(f"u_t and d_t have different row counts: {u_t.shape[0]} vs {d_t.shape[0]}")
    with _autocast_off(u_t.device):
        u_t, d_t = u_t.float(), d_t.float()
        return torch.einsum("bi,bj->ij" if conv1d else "bi,bj->ji", u_t, d_t)
