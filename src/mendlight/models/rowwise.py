"""Several separate low-rank edits of the same weights, each applied only to its own rows, in one pass.

MEND's edit of a weight W is low-rank: ``ΔW = −α Σ_t δ̃_t ũ_tᵀ`` over the edit's tokens t. Its effect on a
row's layer input x is therefore ``ΔW x = −α Σ_t δ̃_t (ũ_t · x)``, computable from the factors without ever
forming ``ΔW``. :class:`RowwiseEdits` holds the factors of k edits, padded to ``[k, T, ·]``, and
:meth:`RowwiseEdits.applied` adds each row's own correction to the edited layers' outputs with a forward
hook: ``out_r += (x_r Ũ_{e(r)}ᵀ) D̃_{e(r)}`` where ``e(r)`` is the edit of row r. One forward pass over the
rows of all k edits then gives exactly the logits of k forwards at ``W + ΔW_1`` … ``W + ΔW_k``, at the cost
of two small batched products per edited layer, and stays differentiable in the factors (training).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


def pad_by_row(values: Tensor, row: Tensor, n_rows: int) -> Tensor:
    """Scatter ``values [N, d]`` into ``[n_rows, T, d]`` by their ``row``, zero-padded.

    Values of one row keep their order; ``T`` is the largest number of values of one row. Differentiable in
    ``values``.
    """
    counts = torch.bincount(row, minlength=n_rows) if row.numel() else row.new_zeros(n_rows)
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    order = torch.sort(row, stable=True).indices
    position = torch.empty_like(row)
    position[order] = torch.arange(row.numel(), device=row.device) - starts[row[order]]
    out = values.new_zeros((n_rows, width, values.shape[-1]))
    return out.index_put((row, position), values)


class RowwiseEdits:
    """k edits of the same weights in factored form; :meth:`applied` applies edit ``e(r)`` to row r only.

    Args:
        factors: for each edited weight name, ``(U, D)`` of shapes ``[k, T, in]`` and ``[k, T, out]``: edit
            i changes the layer's output for an input x by ``(x U_iᵀ) D_i`` (the step size and sign are in
            D). Padding rows of U and D are zero.

    """

    def __init__(self, factors: dict[str, tuple[Tensor, Tensor]]) -> None:
        self.factors = factors

    @property
    def n_edits(self) -> int:
        """Number of edits k."""
        return int(next(iter(self.factors.values()))[0].shape[0]) if self.factors else 0

    def delta(self, name: str, index: int, conv1d: bool = False) -> Tensor:
        """Edit ``index``'s full update of weight ``name`` (``[out, in]``; ``[in, out]`` for a Conv1D)."""
        u, d = self.factors[name]
        return u[index].T @ d[index] if conv1d else d[index].T @ u[index]

    @contextmanager
    def applied(self, model: torch.nn.Module, edit_index: Tensor) -> Iterator[None]:
        """Within the block, each forward row r of ``model`` runs with edit ``edit_index[r]`` applied.

        Args:
            model: the model whose edited layers (the parents of the weights) are hooked.
            edit_index: ``[rows]``: the edit of each row of the forward passes run inside the block.

        """
        handles = []
        try:
            for name, (u, d) in self.factors.items():
                module = model.get_submodule(name.rsplit(".", 1)[0])
                handles.append(module.register_forward_hook(_correction_hook(u[edit_index], d[edit_index])))
            yield
        finally:
            for handle in handles:
                handle.remove()


def _correction_hook(u: Tensor, d: Tensor):
    """A forward hook adding ``(x uᵀ) d`` row by row to a layer's output (x: its ``[rows, T, in]`` input)."""

    def hook(module, args, output):
        x = args[0]
        if x.shape[0] != u.shape[0]:
            raise RuntimeError(
                f"rowwise edits for {u.shape[0]} rows applied to a forward pass over {x.shape[0]} rows"
            )
        coefficients = torch.bmm(x.to(u.dtype), u.transpose(1, 2))  # [rows, T, edit tokens]
        return output + torch.bmm(coefficients, d).to(output.dtype)

    return hook
