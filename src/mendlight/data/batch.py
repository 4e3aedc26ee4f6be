"""The batch contract between data modules and editors (docs/design.md §3).

Every tensor is right-padded. **Labels are aligned with logits**: ``labels[b, t]`` is the token the model
should predict at position ``t`` (for a causal LM, the data module has already shifted them), and ``-100``
marks positions that are not scored. Editors therefore never shift labels; they compare
``logits.argmax(-1)`` with ``labels`` position by position.

Three row layouts share the contract; editors tell them apart by the tensors, never by model names:

* **decoder-only** (causal LMs): ``input_ids``/``attention_mask``/``labels`` all ``[rows, T]``;
* **encoder-decoder** (T5, BART): ``input_ids``/``attention_mask`` feed the encoder; ``decoder_input_ids`` and
  ``decoder_attention_mask`` ``[rows, T_dec]`` feed the decoder and ``labels [rows, T_dec]`` are aligned with
  the decoder logits (``decoder_input_ids`` start with ``config.decoder_start_token_id``: pad for T5, eos
  for BART). The locality KL and the metrics use ``decoder_attention_mask``;
* **binary classification** (BERT-style): ``labels`` is ``[rows]`` with 1 (true), 0 (false) or -100 (none);
  the model returns one logit per row, ``[rows]``.

:func:`model_inputs` gives the keyword arguments of the model's forward, :func:`score_mask` the mask of the
locality KL, and :func:`concat_rows` stacks groups of any layout.

Sub-batches (each a :class:`TokenRows`):

* ``edit`` — the edit inputs x_e with their new targets y_e, one row per simultaneous edit (k rows), and
  ``subject_last``: the position in ``input_ids`` of the last token of the record's subject (-1 where the
  record names none or the prompt does not contain it), for editors keyed on the subject;
* ``equiv`` — equivalence inputs x'_e (rephrases) with the same targets; ``edit_index`` maps each row to its
  edit row. In training there is one row per edit, drawn from the edit prompt and the record's rephrases; in
  evaluation there is one row per rephrase of every edit (and no row for an edit without rephrases);
* ``loc`` — unrelated locality inputs with their answers as labels; ``edit_index`` says which edit record
  contributed the row; ``attention_mask`` is also the mask of the locality KL;
* ``true`` — (evaluation only, optional) the edit prompt with the *old* target ``target_true``; rows of
  records
  without one have every label at -100. Used to flag facts the unedited model already knew;
* ``cond`` — the condition text of each edit for KnowledgeEditor (:class:`CondRows`, no labels):
  ``"<old target> >> <new target> || <prompt>"``, or the edit sequence itself for generation records;
* ``meta`` — plain Python lists of strings for reports (ids, prompts, targets, rephrases).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import torch


class TokenRows(TypedDict):
    """A right-padded group of token rows."""

    input_ids: torch.Tensor  # [rows, T] long
    attention_mask: torch.Tensor  # [rows, T] long, 1 on real tokens
    labels: torch.Tensor  # [rows, T] (or [rows, T_dec]; [rows] for classification), -100 where not scored
    decoder_input_ids: NotRequired[torch.Tensor]  # [rows, T_dec] long, encoder-decoder models only
    decoder_attention_mask: NotRequired[torch.Tensor]  # [rows, T_dec] long, encoder-decoder models only
    edit_index: NotRequired[torch.Tensor]  # [rows] long, row -> edit row (equiv and loc only)
    subject_last: NotRequired[torch.Tensor]  # [rows] long, edit rows: the subject's last token, -1: none


class EditMeta(TypedDict):
    """Raw strings of the records in a batch, for reports and sample tables."""

    ids: list[str]
    prompts: list[str]
    targets: list[str]
    targets_true: list[str | None]
    rephrases: list[list[str]]
    loc_prompts: list[str]
    loc_answers: list[str]
    tasks: list[str]
    relations: NotRequired[list[str | None]]  # the records' relation names (None where unknown)
    relations_in_train: NotRequired[list[bool | None]]  # False: a relation held out of training
    templates: NotRequired[list[str]]  # the prompts with the subject as {s} (see data.composition)
    subjects: NotRequired[list[str | None]]  # the records' subjects (None where a record names none)


class CondRows(TypedDict):
    """The condition text of each edit (KnowledgeEditor's conditioner input), right-padded."""

    input_ids: torch.Tensor  # [k, T_cond] long
    attention_mask: torch.Tensor  # [k, T_cond] long


class EditBatch(TypedDict):
    """One batch of k simultaneous edits with their equivalence and locality rows."""

    edit: TokenRows
    equiv: TokenRows
    loc: TokenRows
    cond: CondRows
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


#: Keys of :class:`TokenRows` passed to the model's forward, in order.
MODEL_INPUT_KEYS: tuple[str, ...] = (
    "input_ids",
    "attention_mask",
    "decoder_input_ids",
    "decoder_attention_mask",
)
_PAD_VALUES = {"attention_mask": 0, "decoder_attention_mask": 0, "labels": -100}


def model_inputs(rows: TokenRows) -> dict[str, torch.Tensor]:
    """Keyword arguments of the model's forward for ``rows`` (decoder inputs included when present)."""
    return {key: rows[key] for key in MODEL_INPUT_KEYS if key in rows}  # type: ignore[literal-required]


def is_classification(rows: TokenRows) -> bool:
    """Whether ``rows`` are binary-classification rows (one label per row)."""
    return rows["labels"].ndim == 1


def score_mask(rows: TokenRows) -> torch.Tensor:
    """Mask of the locality KL: the decoder mask for encoder-decoder rows, else the attention mask.

    For classification rows it is all ones, ``[rows]`` (the Bernoulli KL is averaged over rows).
    """
    if is_classification(rows):
        return torch.ones_like(rows["labels"])
    return rows.get("decoder_attention_mask", rows["attention_mask"])


def token_labels(rows: TokenRows) -> torch.Tensor:
    """Labels as ``[rows, positions]``: a classifier's ``[rows]`` labels become one position per row."""
    labels = rows["labels"]
    return labels if labels.ndim == 2 else labels.unsqueeze(1)


def output_width(rows: TokenRows) -> int | None:
    """Width of the logits the rows produce (the label width), or None for classification rows."""
    return None if is_classification(rows) else int(rows["labels"].shape[1])


def concat_rows(groups: list[TokenRows], pad_token_id: int) -> tuple[TokenRows, list[int]]:
    """Stack several row groups into one right-padded group (for a single fused forward pass).

    Rows are independent under causal attention with right padding (and under encoder/decoder attention with
    their masks), so one forward over the stacked rows gives exactly the logits of separate forwards. Every
    2-D tensor is padded to the widest group (ids with ``pad_token_id``, masks with 0, labels with -100);
    1-D classification labels are concatenated. Returns the stacked rows (without ``edit_index``) and the
    row count of each group, for :func:`split_rows`.
    """
    keys = [k for k in (*MODEL_INPUT_KEYS, "labels") if k in groups[0]]
    for group in groups[1:]:
        if [k for k in (*MODEL_INPUT_KEYS, "labels") if k in group] != keys:
            raise ValueError("row groups of different layouts (decoder inputs in some only) cannot stack")
    stacked: dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [g[key] for g in groups]  # type: ignore[literal-required]
        if tensors[0].ndim == 1:
            stacked[key] = torch.cat(tensors)
            continue
        width = max(int(t.shape[1]) for t in tensors)
        value = _PAD_VALUES.get(key, pad_token_id)
        stacked[key] = torch.cat(
            [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value) for t in tensors]
        )
    return stacked, [int(g["input_ids"].shape[0]) for g in groups]  # type: ignore[return-value]


def split_rows(tensor: torch.Tensor, sizes: list[int], widths: list[int]) -> list[torch.Tensor]:
    """Undo :func:`concat_rows` on a ``[rows, T, ...]`` output: split by row counts, trim to widths."""
    parts = torch.split(tensor, sizes)
    return [part[:, :width] for part, width in zip(parts, widths, strict=True)]


def num_rows(rows: TokenRows) -> int:
    """Number of rows in a group."""
    return int(rows["input_ids"].shape[0])
