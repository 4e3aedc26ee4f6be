"""The batch contract between data modules and editors (DESIGN.md §3).

Every tensor is right-padded. **Labels are aligned with logits**: ``labels[b, t]`` is the token the model
should predict at position ``t`` (for a causal LM, the data module has already shifted them), and ``-100``
marks positions that are not scored. Editors therefore never shift labels; they compare
``logits.argmax(-1)`` with ``labels`` position by position.

Sub-batches (each a :class:`TokenRows`):

* ``edit`` — the edit inputs x_e with their new targets y_e, one row per simultaneous edit (k rows);
* ``equiv`` — equivalence inputs x'_e (rephrases) with the same targets; ``edit_index`` maps each row to its
  edit row. In training there is one row per edit, drawn from the edit prompt and the record's rephrases; in
  evaluation there is one row per rephrase of every edit (and no row for an edit without rephrases);
* ``loc`` — unrelated locality inputs with their answers as labels; ``edit_index`` says which edit record
  contributed the row; ``attention_mask`` is also the mask of the locality KL;
* ``true`` — (evaluation only, optional) the edit prompt with the *old* target ``target_true``; rows of
  records
  without one have every label at -100. Used to flag facts the unedited model already knew;
* ``meta`` — plain Python lists of strings for reports (ids, prompts, targets, rephrases).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import torch


class TokenRows(TypedDict):
    """A right-padded group of token rows."""

    input_ids: torch.Tensor  # [rows, T] long
    attention_mask: torch.Tensor  # [rows, T] long, 1 on real tokens
    labels: torch.Tensor  # [rows, T] long, aligned with logits, -100 where not scored
    edit_index: NotRequired[torch.Tensor]  # [rows] long, row -> edit row (equiv and loc only)


class EditMeta(TypedDict):
    """Raw strings of the records in a batch, for reports and sample tables."""

    ids: list[str]
    prompts: list[str]
    targets: list[str]
    targets_true: list[str | None]
    rephrases: list[list[str]]
    loc_prompts: list[str]
    loc_answers: list[str]


class EditBatch(TypedDict):
    """One batch of k simultaneous edits with their equivalence and locality rows."""

    edit: TokenRows
    equiv: TokenRows
    loc: TokenRows
    true: NotRequired[TokenRows]
    meta: EditMeta


def batch_to(batch: EditBatch, device: torch.device | str) -> EditBatch:
    """Move every tensor of a batch to ``device`` (meta strings are left alone)."""
    out: dict = {}
    for key, value in batch.items():
        if key == "meta":
            out[key] = value
        else:
            out[key] = {k: v.to(device) for k, v in value.items()}
    return out  # type: ignore[return-value]


def concat_rows(groups: list[TokenRows], pad_token_id: int) -> tuple[TokenRows, list[int]]:
    """Stack several row groups into one right-padded group (for a single fused forward pass).

    Rows are independent under causal attention with right padding, so one forward over the stacked rows
    gives exactly the logits of separate forwards. Returns the stacked rows (without ``edit_index``) and the
    row count of each group, for :func:`split_rows`.
    """
    width = max(int(g["input_ids"].shape[1]) for g in groups)

    def pad(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    stacked: TokenRows = {
        "input_ids": torch.cat([pad(g["input_ids"], pad_token_id) for g in groups]),
        "attention_mask": torch.cat([pad(g["attention_mask"], 0) for g in groups]),
        "labels": torch.cat([pad(g["labels"], -100) for g in groups]),
    }
    return stacked, [int(g["input_ids"].shape[0]) for g in groups]


def split_rows(tensor: torch.Tensor, sizes: list[int], widths: list[int]) -> list[torch.Tensor]:
    """Undo :func:`concat_rows` on a ``[rows, T, ...]`` output: split by row counts, trim to widths."""
    parts = torch.split(tensor, sizes)
    return [part[:, :width] for part, width in zip(parts, widths, strict=True)]


def num_rows(rows: TokenRows) -> int:
    """Number of rows in a group."""
    return int(rows["input_ids"].shape[0])
