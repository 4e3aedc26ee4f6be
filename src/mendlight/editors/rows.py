"""Stacked row groups: one bottom pass shared by every forward of a step.

A training or evaluation step runs the model on several row groups (edit, rephrase, locality, true) before
and after an edit. :class:`RowStack` pads the groups to one width and stacks them, runs the frozen part of
the model below the lowest edited block once (:class:`~mendlight.models.split.BlockSplit`), and hands out
contiguous slices of rows with their cached hidden states; logits are split back per group and trimmed to
each group's own width, so callers see exactly the shapes of their input groups.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from pytorch_lightning import LightningModule

from mendlight.data.batch import TokenRows, concat_rows, num_rows, output_width


class RowStack:
    """Named row groups stacked into one right-padded batch, with the shared bottom pass.

    Args:
        editor: the editor (its base model, pad id and block split are used).
        groups: name → rows, in stacking order.
        bottom: run the bottom pass now (only when the editor's base can be split).

    """

    def __init__(self, editor: LightningModule, groups: dict[str, TokenRows], bottom: bool = True) -> None:
        self.names = list(groups)
        self.rows, sizes = concat_rows(list(groups.values()), editor.pad_token_id)
        self.sizes = dict(zip(self.names, sizes, strict=True))
        self.widths = {name: output_width(rows) for name, rows in groups.items()}
        self.offsets: dict[str, int] = {}
        start = 0
        for name in self.names:
            self.offsets[name] = start
            start += self.sizes[name]
        self.hidden = editor.bottom(self.rows) if bottom and start else None

    def select(self, *names: str) -> tuple[TokenRows, torch.Tensor | None]:
        """The rows (and cached hidden states) of consecutive groups ``names``."""
        order = [self.names.index(n) for n in names]
        if order != list(range(order[0], order[0] + len(order))):
            raise ValueError(f"groups {names} are not consecutive in {self.names}")
        start = self.offsets[names[0]]
        end = start + sum(self.sizes[n] for n in names)
        rows: TokenRows = {k: v[start:end] for k, v in self.rows.items()}  # type: ignore[assignment]
        hidden = self.hidden[start:end] if self.hidden is not None else None
        return rows, hidden

    def split(self, logits: torch.Tensor, *names: str) -> list[torch.Tensor]:
        """Split logits of ``select(*names)`` back into one tensor per group, each at its own width."""
        parts = torch.split(logits, [self.sizes[n] for n in names])
        return [
            part if self.widths[n] is None else part[:, : self.widths[n]]
            for part, n in zip(parts, names, strict=True)
        ]


def rows_of_edits(rows: TokenRows, start: int, end: int) -> TokenRows:
    """The rows of a group (equivalence or locality) that belong to edits ``start:end`` (by ``edit_index``).

    Every tensor of the group is cut to those rows, in their order; ``edit_index`` is kept as it is.

    Raises:
        ValueError: if the group has no ``edit_index`` (rows made outside the data module).

    """
    if "edit_index" not in rows:
        raise ValueError("these rows have no edit_index: cannot tell which edit each row belongs to")
    owner = rows["edit_index"]
    keep = (owner >= start) & (owner < end)
    return {key: value[keep] for key, value in rows.items()}  # type: ignore[return-value]


def row_chunks(
    rows: TokenRows, size: int | None, hidden: torch.Tensor | None = None
) -> Iterator[tuple[int, TokenRows, torch.Tensor | None]]:
    """Consecutive slices of at most ``size`` rows (every row at once when ``size`` is None).

    Yields:
        ``(start, rows[start:start + size], hidden[start:start + size])`` (hidden None when not given).

    """
    n = num_rows(rows)
    step = size or max(n, 1)
    for start in range(0, n, step):
        part: TokenRows = {key: value[start : start + step] for key, value in rows.items()}  # type: ignore[assignment]
        yield start, part, hidden[start : start + step] if hidden is not None else None
