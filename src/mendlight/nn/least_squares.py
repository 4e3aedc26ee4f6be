"""MALMEN's regularised least-squares update, computed and differentiated in chunks of key rows.

For one edited weight with keys ``K`` (``n × key_size``, the layer inputs of every edit's scored tokens) and
value shifts ``V`` (``n × value_size``), the update is the ridge solution

    ``ΔW = argmin ‖K ΔW − V‖² + e^λ ‖ΔW‖² = (KᵀK + e^λ I)⁻¹ KᵀV``,

a ``key_size × key_size`` solve whatever the number of keys. :func:`ridge_update` accumulates ``KᵀK`` and
``KᵀV`` over chunks of rows, so ``V`` is never held whole, and differentiates the solve in closed form
(docs/algorithm.md §11.4): with ``G = ∂L/∂ΔW`` and ``M = (KᵀK + e^λ I)⁻¹ G``,

    ``∂L/∂V = K M``  and  ``∂L/∂λ = −e^λ Σ M ⊙ ΔW``;

``∂L/∂V`` is pushed into the parameters that made ``V`` one chunk at a time, recomputing that chunk of
``V`` with autograd on (as activation checkpointing does). Memory then depends on the chunk size, not on
``n``. :func:`ridge_solve` is the same solve with ordinary autograd (the reference the tests compare with).

Given a ``prior`` ``C`` (``key_size × key_size``, symmetric positive definite) the regulariser is
``e^λ tr(ΔWᵀ C ΔW)`` instead of ``e^λ ‖ΔW‖²``: ``ΔW = (KᵀK + e^λ C)⁻¹ KᵀV`` and ``∂L/∂λ = −e^λ Σ M ⊙ CΔW``.
With ``C`` the second moment of the layer's inputs on other text this is MEMIT's regulariser: the update
changes the outputs least where inputs usually lie (docs/algorithm.md §11.5c).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

#: ``values(start, end)``: the value shifts of key rows ``start:end``, ``[end − start, value_size]``.
ValueChunks = Callable[[int, int], Tensor]


def ridge_matrix(gram: Tensor, log_lambda: Tensor, prior: Tensor | None = None) -> Tensor:
    """``KᵀK + e^λ C`` from the Gram matrix ``KᵀK`` (``[key_size, key_size]``), λ and the prior ``C`` (I)."""
    if prior is None:
        prior = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return gram + log_lambda.to(gram.dtype).exp() * prior.to(gram.dtype)


def ridge_solve(keys: Tensor, values: Tensor, log_lambda: Tensor, prior: Tensor | None = None) -> Tensor:
    """``(KᵀK + e^λ C)⁻¹ KᵀV`` in one piece, differentiable by ordinary autograd (the reference form).

    Args:
        keys: ``K``, ``[n, key_size]``.
        values: ``V``, ``[n, value_size]``.
        log_lambda: λ, a 0-d tensor.
        prior: ``C``, ``[key_size, key_size]`` (None: the identity).

    Returns:
        ``ΔW``, ``[key_size, value_size]``.

    """
    return torch.linalg.solve(ridge_matrix(keys.T @ keys, log_lambda, prior), keys.T @ values)


def ridge_update(
    keys: Tensor,
    values: ValueChunks,
    width: int,
    log_lambda: Tensor,
    params: Sequence[Tensor],
    chunk: int,
    prior: Tensor | None = None,
) -> Tensor:
    """The ridge update ``(KᵀK + e^λ C)⁻¹ KᵀV`` with ``V`` made (and differentiated) ``chunk`` rows at a time.

    Args:
        keys: ``K``, ``[n, key_size]``, a constant (no gradient flows into it).
        values: ``values(start, end)`` computes rows ``start:end`` of ``V`` from ``params``; it is called once
            per chunk in the forward pass (without autograd) and again per chunk in the backward pass.
        width: ``value_size``, the width of ``V``.
        log_lambda: λ, a 0-d tensor (may require grad).
        params: every tensor ``values`` depends on that may need a gradient (leaves: the editor's
            parameters); their gradients come from the closed form above.
        chunk: rows of ``V`` computed at once.
        prior: ``C``, ``[key_size, key_size]``, a constant (None: the identity, MALMEN's regulariser).

    Returns:
        ``ΔW``, ``[key_size, value_size]``, in float32 (float64 for float64 keys).

    """
    return _ChunkedRidge.apply(keys, values, (width, chunk, prior), log_lambda, *params)


def _chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk, n)) for start in range(0, n, chunk)]


class _ChunkedRidge(torch.autograd.Function):
    """Autograd node of :func:`ridge_update`: closed-form backward through the solve, chunked recompute."""

    @staticmethod
    def forward(
        ctx,
        keys: Tensor,
        values: ValueChunks,
        sizes: tuple[int, int, Tensor | None],
        log_lambda: Tensor,
        *params: Tensor,
    ) -> Tensor:
        width, chunk, prior = sizes
        keys = keys.to(torch.promote_types(keys.dtype, torch.float32))  # float32, or float64 if given
        n, key_size = keys.shape
        gram = keys.new_zeros(key_size, key_size)
        cross = keys.new_zeros(key_size, width)
        for start, end in _chunks(n, chunk):
            k_c = keys[start:end]
            gram.addmm_(k_c.T, k_c)
            cross.addmm_(k_c.T, values(start, end).to(keys.dtype))
        prior = None if prior is None else prior.to(device=keys.device, dtype=keys.dtype)
        matrix = ridge_matrix(gram, log_lambda, prior)
        delta = torch.linalg.solve(matrix, cross)
        ctx.values, ctx.chunk, ctx.prior = values, chunk, prior
        ctx.save_for_backward(keys, matrix, delta, log_lambda, *params)
        return delta

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        keys, matrix, delta, log_lambda, *params = ctx.saved_tensors
        m = torch.linalg.solve(matrix, grad.to(matrix.dtype))  # the matrix is symmetric: M = A⁻¹ G
        g_lambda = None
        if ctx.needs_input_grad[3]:
            pulled = delta if ctx.prior is None else ctx.prior @ delta  # ∂(KᵀK + e^λ C)/∂λ ΔW = e^λ CΔW
            g_lambda = (-log_lambda.to(m.dtype).exp() * (m * pulled).sum()).to(log_lambda.dtype)
        wanted = [i for i, p in enumerate(params) if ctx.needs_input_grad[4 + i]]
        totals: list[Tensor | None] = [None] * len(params)
        if wanted:
            inputs = [params[i] for i in wanted]
            with torch.enable_grad():
                for start, end in _chunks(keys.shape[0], ctx.chunk):
                    v_c = ctx.values(start, end)
                    g_v = (keys[start:end] @ m).to(v_c.dtype)  # ∂L/∂V of these rows
                    grads = torch.autograd.grad(v_c, inputs, g_v, allow_unused=True)
                    for i, g in zip(wanted, grads, strict=True):
                        if g is not None:
                            totals[i] = g if totals[i] is None else totals[i] + g
        return (None, None, None, g_lambda, *totals)
