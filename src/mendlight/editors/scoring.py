"""The scoring passes of an evaluation, ``eval_chunk`` rows at a time (issue #14: k = 1,000 edits).

After an edit the evaluation runs the model over every row group of the batch: the edit and rephrase rows
after the edit, the locality rows before and after it, the old targets' rows before it. The groups are stacked
into one right-padded batch (:class:`~mendlight.editors.rows.RowStack`) and cut into chunks of ``eval_chunk``
rows. Each chunk runs the frozen bottom once (shared by a locality row's pre- and post-edit passes) and the
output head only at the positions that are read (:meth:`~mendlight.editors.base.Editor.eval_logits`): the
scored positions, plus the locality KL's positions for locality rows. Of those logits a chunk keeps its
:class:`~mendlight.editors.scores.RowScores` and its KL terms, then frees them.

Memory therefore holds one chunk's activations and logits at a time, plus a few bytes per position of the
batch (its stacked inputs and scores): it grows with k by the rows' inputs and scores, never by
``vocabulary × positions`` (some 34 GB for k = 1,000 edits of SmolLM2 with full logits).
"""

from __future__ import annotations

import torch
from pytorch_lightning import LightningModule

from mendlight.data.batch import EditBatch, num_rows, token_labels
from mendlight.editors.rows import RowStack, row_chunks
from mendlight.editors.scores import EditScores, RowScores, fill_scores
from mendlight.losses import kl_terms
from mendlight.models.functional import ParamDeltas


@torch.no_grad()
def score_batch(
    editor: LightningModule, batch: EditBatch, deltas: ParamDeltas, latency: float | None
) -> EditScores:
    """The scores of every row group of ``batch`` before and after the edit ``deltas``.

    Args:
        editor: the editor (its base model, pre-edit model and ``eval_chunk`` option are used).
        batch: the evaluation batch.
        deltas: the edit (the model after it is ``θ₀ + deltas``; a cache editor's entries).
        latency: the edit's wall-clock time, handed on.

    """
    groups = {"edit": batch["edit"], "equiv": batch["equiv"], "loc": batch["loc"]}
    true = batch.get("true")
    if true is not None:
        groups["true"] = true
    stack = RowStack(editor, groups, bottom=False)
    pre_deltas = editor.pre_edit_deltas()
    post_edit, post_equiv = _score_groups(editor, stack, ("edit", "equiv"), deltas)
    pre_loc, post_loc, loc_kl = _score_locality(editor, stack, pre_deltas, deltas)
    pre_true = _score_groups(editor, stack, ("true",), pre_deltas)[0] if true is not None else None
    return EditScores(pre_loc, post_edit, post_equiv, post_loc, pre_true, loc_kl, latency)  # type: ignore[arg-type]


def _chunk_size(editor: LightningModule) -> int | None:
    return editor.hparams.get("eval_chunk")


def _score_groups(
    editor: LightningModule, stack: RowStack, names: tuple[str, ...], deltas: ParamDeltas | None
) -> list[RowScores]:
    """The scores of consecutive groups ``names`` of ``stack`` at ``θ₀ + deltas``."""
    rows, _ = stack.select(*names)
    scores = RowScores.empty(token_labels(rows))
    for start, chunk, _ in row_chunks(rows, _chunk_size(editor)):
        at = token_labels(chunk) != -100
        packed = editor.eval_logits(chunk, at, deltas, editor.bottom(chunk))
        fill_scores(scores, start, packed, at)
    return _split(stack, scores, names)


def _score_locality(
    editor: LightningModule, stack: RowStack, pre_deltas: ParamDeltas | None, deltas: ParamDeltas
) -> tuple[RowScores, RowScores, torch.Tensor]:
    """The locality rows' scores before and after the edit, and the KL terms at the KL's positions."""
    rows, _ = stack.select("loc")
    labels = token_labels(rows)
    kl_at = editor.kl_positions(rows)
    pre, post = RowScores.empty(labels), RowScores.empty(labels)
    terms = []
    for start, chunk, _ in row_chunks(rows, _chunk_size(editor)):
        chunk_kl = kl_at[start : start + num_rows(chunk)]
        at = (token_labels(chunk) != -100) | chunk_kl
        hidden = editor.bottom(chunk)  # one bottom pass for both models
        before = editor.eval_logits(chunk, at, pre_deltas, hidden)
        after = editor.eval_logits(chunk, at, deltas, hidden)
        fill_scores(pre, start, before, at)
        fill_scores(post, start, after, at)
        compared = chunk_kl[at]
        terms.append(kl_terms(before[compared], after[compared]))
    loc_kl = torch.cat(terms) if terms else labels.new_zeros(0, dtype=torch.float32)
    return (*_split(stack, pre, ("loc",)), *_split(stack, post, ("loc",)), loc_kl)  # type: ignore[return-value]


def _split(stack: RowStack, scores: RowScores, names: tuple[str, ...]) -> list[RowScores]:
    """Scores of stacked groups back per group, each at its own width.

    Each is made contiguous, so that a sum over it adds in the order it did over logits made at the group's
    own width (a strided view of the wider stack sums in another order: other float32 roundings).
    """
    parts = [stack.split(t, *names) for t in (scores.labels, scores.pred, scores.logp)]
    return [RowScores(*(t.contiguous() for t in fields)) for fields in zip(*parts, strict=True)]
