"""Evaluation of one edit batch: metric updates and per-record result rows (docs/design.md §5).

The editor scores the rows before and after its edit (:mod:`mendlight.editors.scoring`); this module turns
the scores into the paper's numbers: edit success on the edit input, on rephrases and pooled (Eq. 1),
accuracy and perplexity drawdown on the locality rows, EasyEdit's pre/post agreement, and the per-record
rows written to ``results.json``.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

from mendlight.data.batch import EditBatch, TokenRows
from mendlight.editors.scores import EditScores
from mendlight.metrics import (
    AccuracyDrawdown,
    EditSuccess,
    LocalityAgreement,
    PerplexityDrawdown,
    has_target,
)


class StageMetrics(nn.Module):
    """The torchmetrics objects of one stage (``val`` or ``test``), logged as ``<stage>/<name>``."""

    def __init__(self) -> None:
        super().__init__()
        self.es = EditSuccess()
        self.es_edit = EditSuccess()
        self.es_equiv = EditSuccess()
        self.acc_drawdown = AccuracyDrawdown()
        self.ppl_drawdown = PerplexityDrawdown()
        self.locality = LocalityAgreement()
        self.edit_latency_s = MeanMetric()
        self.loss = MeanMetric()  # the training objective on evaluation batches, weighted by edits

    def named(self) -> dict[str, nn.Module]:
        """Name → metric, in reporting order."""
        return {
            "es": self.es,
            "es_edit": self.es_edit,
            "es_equiv": self.es_equiv,
            "acc_drawdown": self.acc_drawdown,
            "ppl_drawdown": self.ppl_drawdown,
            "locality": self.locality,
            "edit_latency_s": self.edit_latency_s,
        }

    def epoch_values(self) -> dict[str, torch.Tensor]:
        """Every metric of the epoch (``loss`` included), reduced over all processes, then reset.

        Every process calls this at the end of the epoch, whatever batches it evaluated (padding only,
        even): the reduction is one collective call per metric in the same order everywhere.
        """
        values = {}
        for name, metric in {**self.named(), "loss": self.loss}.items():
            values[name] = metric.compute()
            metric.reset()
        return values


def update_metrics(metrics: StageMetrics, out: EditScores) -> None:
    """Feed one batch's scores into the stage's metrics."""
    edit, equiv = out.post_edit, out.post_equiv
    metrics.es_edit.update(edit.pred, edit.labels)
    metrics.es.update(edit.pred, edit.labels)
    if equiv.labels.shape[0]:
        metrics.es_equiv.update(equiv.pred, equiv.labels)
        metrics.es.update(equiv.pred, equiv.labels)
    pre, post = out.pre_loc, out.post_loc
    if pre.labels.shape[0]:
        metrics.acc_drawdown.update(pre.pred, post.pred, pre.labels)
        metrics.locality.update(pre.pred, post.pred, pre.labels)
        pre_nll, n_tok = pre.nll()
        post_nll, _ = post.nll()
        metrics.ppl_drawdown.update(pre_nll, post_nll, n_tok)
    metrics.edit_latency_s.update(torch.tensor(out.latency_s))


def _by_edit(values: torch.Tensor, index: torch.Tensor, k: int) -> list[list[float]]:
    out: list[list[float]] = [[] for _ in range(k)]
    for v, i in zip(values.tolist(), index.tolist(), strict=True):
        out[i].append(v)
    return out


#: Field of a per-record row holding the record's position in its split while the rows of the processes
#: of a run are gathered (:func:`mendlight.editors.reports._gather` sorts by it and removes it).
POSITION_FIELD = "_position"


def record_rows(batch: EditBatch, out: EditScores) -> list[dict]:
    """Per-record result rows (the schema of :func:`mendlight.reporting.summarise`)."""
    edit, equiv, loc, meta = batch["edit"], batch["equiv"], batch["loc"], batch["meta"]
    k = edit["input_ids"].shape[0]
    es_edit = out.post_edit.correct().tolist()
    equiv_ok = _by_edit(
        out.post_equiv.correct().float(), equiv.get("edit_index", torch.zeros(0, dtype=torch.long)), k
    )
    loc_index = loc.get("edit_index", torch.zeros(0, dtype=torch.long))
    pre, post = out.pre_loc, out.post_loc
    scored = pre.scored
    agree = ((pre.pred == post.pred) & scored).sum(-1).float() / scored.sum(-1).clamp(min=1).float()
    pre_nll, n_tok = pre.row_nll()
    post_nll, _ = post.row_nll()
    loc_cols = {
        "pre": _by_edit(pre.correct().float(), loc_index, k),
        "post": _by_edit(post.correct().float(), loc_index, k),
        "agree": _by_edit(agree, loc_index, k),
        "pre_nll": _by_edit(torch.tensor(pre_nll), loc_index, k),
        "post_nll": _by_edit(torch.tensor(post_nll), loc_index, k),
        "tokens": _by_edit(torch.tensor(n_tok, dtype=torch.float), loc_index, k),
    }
    known: list[bool | None] = [None] * k
    if out.pre_true is not None and "true" in batch:
        ok = out.pre_true.correct().tolist()
        present = has_target(out.pre_true.labels).tolist()
        known = [bool(o) if p else None for o, p in zip(ok, present, strict=True)]
    rows = []
    for j in range(k):
        rows.append(
            {
                "id": meta["ids"][j],
                "prompt": meta["prompts"][j],
                "target": meta["targets"][j],
                "target_true": meta["targets_true"][j],
                "known": known[j],
                "es_edit": int(es_edit[j]),
                "equiv_success": int(sum(equiv_ok[j])),
                "equiv_total": len(equiv_ok[j]),
                "loc_pre_correct": int(sum(loc_cols["pre"][j])),
                "loc_post_correct": int(sum(loc_cols["post"][j])),
                "loc_total": len(loc_cols["pre"][j]),
                "loc_agree_sum": float(sum(loc_cols["agree"][j])),
                "loc_pre_nll": float(sum(loc_cols["pre_nll"][j])),
                "loc_post_nll": float(sum(loc_cols["post_nll"][j])),
                "loc_tokens": int(sum(loc_cols["tokens"][j])),
                "latency_s": out.latency_s,
                "task": (meta.get("tasks") or ["completion"] * k)[j],
                "relation": (meta.get("relations") or [None] * k)[j],
                "relation_in_train": (meta.get("relations_in_train") or [None] * k)[j],
                "template": (meta.get("templates") or [None] * k)[j],
                "pre_output": "",
                "post_output": "",
            }
        )
    return rows


def prompt_only(rows: TokenRows) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each edit row back to its prompt (the tokens before the first labelled position's target)."""
    labels = rows["labels"]
    scored = labels != -100
    first = torch.where(scored.any(-1), scored.float().argmax(-1), rows["attention_mask"].sum(-1) - 1)
    ids = rows["input_ids"].clone()
    mask = torch.zeros_like(rows["attention_mask"])
    for r, last in enumerate(first.tolist()):
        mask[r, : last + 1] = 1
    ids[mask == 0] = 0
    width = int(mask.sum(-1).max())
    return ids[:, :width], mask[:, :width]


def prompt_inputs(rows: TokenRows) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs a model continues for each row.

    The encoder input of encoder-decoder and classification rows; the prompt part (:func:`prompt_only`) of
    decoder-only rows.
    """
    if "decoder_input_ids" in rows or rows["labels"].ndim == 1:
        return rows["input_ids"], rows["attention_mask"]
    return prompt_only(rows)
