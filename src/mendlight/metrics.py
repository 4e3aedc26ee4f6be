"""Editing metrics as torchmetrics ``Metric`` objects, plus the functional helpers they share.

Every metric keeps only sum states (``dist_reduce_fx="sum"``), so DDP reduction is exact
(docs/design.md §8.2), and implements only ``update``/``compute``. Each metric's value is one formula
over those sums, defined once below (:func:`success_rate`, :func:`accuracy_drawdown_of`,
:func:`perplexity_drawdown_of`, :func:`mean_agreement`): ``compute()`` applies it to the metric's states,
and :func:`mendlight.reporting.summarise` to the same sums taken over per-record result rows. The
definitions follow docs/algorithm.md §6 and docs/design.md §5:

* a *row* (one sequence) is correct iff every scored position (label != -100) is the argmax under teacher
  forcing (the MEND paper's whole-target exact match); rows with no scored position are ignored;
* classification input (``pred [B]``, ``labels [B]``, already 0/1 decisions) is supported: a row is correct
  iff ``pred == label``.

Inputs are expected to be already aligned: ``labels[b, t]`` is the target of ``logits[b, t]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

IGNORE_INDEX = -100

PROTOCOLS: dict[str, str] = {
    "es": (
        "Edit success, MEND paper Eq. 1: the fraction of rows, pooled over every edit input and all of its "
        "rephrases, whose whole target is the teacher-forced argmax at every scored token (classification: "
        "the predicted label equals the edit label); rows are weighted equally."
    ),
    "es_edit": (
        "Edit success on the edit input x_e only: the fraction of edits whose whole target y_e is the "
        "teacher-forced argmax of the edited model at every scored token (classification: label match)."
    ),
    "es_equiv": (
        "Edit success on the rephrases N(x_e) only: the fraction of rephrase rows (pooled over all edits) "
        "whose whole target is the teacher-forced argmax of the edited model at every scored token."
    ),
    "acc_drawdown": (
        "Accuracy drawdown on locality rows: (number of rows the unedited model gets right - number the "
        "edited model gets right) / number of rows, each row scored by whole-answer teacher-forced exact "
        "match against its gold answer; positive means damage."
    ),
    "ppl_drawdown": (
        "Perplexity drawdown on locality text: exp(summed post-edit token NLL / n_tokens) - exp(summed "
        "pre-edit token NLL / n_tokens), token-weighted over all scored locality tokens of the whole "
        "evaluation (one perplexity per model); positive means damage."
    ),
    "locality": (
        "EasyEdit locality: per locality row, the fraction of scored positions where the teacher-forced "
        "argmax of the edited model equals that of the unedited model, averaged over rows (agreement, not "
        "correctness)."
    ),
    "edit_latency_s": (
        "Mean wall-clock time in seconds of the editor's edit() call only (no data loading, no evaluation), "
        "one call per edit."
    ),
    "known_fraction": (
        "Fraction of records (among those where it was determined) whose true fact target_true was "
        "already produced by the unedited model, by the same whole-target teacher-forced exact match."
    ),
}


# --------------------------------------------------------------------------------------------------
# Functional helpers
# --------------------------------------------------------------------------------------------------


def _check_pair(pred: Tensor, labels: Tensor) -> None:
    """Raise ``ValueError`` unless ``pred`` and ``labels`` are ``[B]`` or ``[B, T]`` of the same shape."""
    if labels.dim() not in (1, 2):
        raise ValueError(f"labels must be [B] or [B, T], got shape {tuple(labels.shape)}")
    if pred.shape != labels.shape:
        raise ValueError(
            f"pred and labels must have the same shape, got {tuple(pred.shape)} and {tuple(labels.shape)}"
        )


def has_target(labels: Tensor) -> Tensor:
    """Return which rows have at least one scored position.

    Args:
        labels: ``[B, T]`` token labels, or ``[B]`` classification labels; ``-100`` marks unscored entries.

    Returns:
        BoolTensor ``[B]``: True where the row has a label different from -100.

    """
    if labels.dim() not in (1, 2):
        raise ValueError(f"labels must be [B] or [B, T], got shape {tuple(labels.shape)}")
    mask = labels != IGNORE_INDEX
    return mask if labels.dim() == 1 else mask.any(dim=-1)


def sequence_correct(pred: Tensor, labels: Tensor) -> Tensor:
    """Whole-target teacher-forced exact match per row.

    Args:
        pred: ``[B, T]`` argmax token ids, or ``[B]`` predicted class decisions.
        labels: Same shape as ``pred``; ``-100`` marks unscored positions.

    Returns:
        BoolTensor ``[B]``: True iff the row has a scored position and ``pred == labels`` at every scored
        position. Rows without any scored position are False (callers ignore them via :func:`has_target`).

    Raises:
        ValueError: If the shapes differ or are not ``[B]`` / ``[B, T]``.

    """
    _check_pair(pred, labels)
    mask = labels != IGNORE_INDEX
    hit = (pred == labels) | ~mask
    if labels.dim() == 2:
        hit = hit.all(dim=-1)
    return hit & has_target(labels)


def _agreement(pre_pred: Tensor, post_pred: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row fraction of scored positions where ``pre_pred == post_pred``, and the row mask.

    Returns:
        ``(agree [B] float, valid [B] bool)``; ``agree`` is 0 on rows without a scored position.

    """
    _check_pair(pre_pred, labels)
    _check_pair(post_pred, labels)
    mask = labels != IGNORE_INDEX
    same = (pre_pred == post_pred) & mask
    if labels.dim() == 1:
        return same.double(), mask
    n = mask.sum(dim=-1)
    agree = same.sum(dim=-1).double() / n.clamp(min=1).double()
    return agree, n > 0


def token_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Return the summed token negative log-likelihood over scored positions, in float32.

    Args:
        logits: ``[..., V]`` logits (e.g. ``[B, T, V]``), already aligned with ``labels``.
        labels: ``[...]`` target ids (e.g. ``[B, T]``); ``-100`` marks unscored positions.

    Returns:
        ``(nll_sum, n_tokens)``: a float32 scalar with ``-Σ log p(label)`` over scored positions (computed
        with ``log_softmax`` in float32; differentiable w.r.t. ``logits``) and a long scalar with the number
        of scored positions.

    Raises:
        ValueError: If ``logits.shape[:-1] != labels.shape``.

    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)} "
            "(expected [..., V] vs [...])"
        )
    mask = labels != IGNORE_INDEX
    logp = torch.log_softmax(logits.float(), dim=-1)
    tok = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    nll = -torch.where(mask, tok, torch.zeros_like(tok)).sum()
    return nll, mask.sum()


# --------------------------------------------------------------------------------------------------
# The formulas over sums (one definition each: the metrics' compute() and reporting.summarise use them)
# --------------------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float | None:
    return None if not den else num / den


def success_rate(correct: float, total: float) -> float | None:
    """Edit success: ``correct / total`` rows; None without rows."""
    return _ratio(correct, total)


def accuracy_drawdown_of(pre_correct: float, post_correct: float, total: float) -> float | None:
    """Accuracy drawdown: ``(pre_correct - post_correct) / total`` rows; None without rows."""
    return _ratio(pre_correct - post_correct, total)


def perplexity_drawdown_of(pre_nll: float, post_nll: float, n_tokens: float) -> float | None:
    """Perplexity drawdown: ``exp(post_nll / n) - exp(pre_nll / n)``, token-weighted.

    An overflowing perplexity is ``inf``; None without tokens, or when both overflow (``inf - inf``).
    """
    if not n_tokens:
        return None
    value = _safe_exp(post_nll / n_tokens) - _safe_exp(pre_nll / n_tokens)
    return None if math.isnan(value) else value


def mean_agreement(agree_sum: float, total: float) -> float | None:
    """EasyEdit's locality: the per-row agreements' sum over the rows; None without rows."""
    return _ratio(agree_sum, total)


def _safe_exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _as_tensor(value: float | None) -> Tensor:
    """A formula's value as a metric's float32 scalar (NaN for "no data")."""
    return torch.tensor(math.nan if value is None else value, dtype=torch.float32)


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


class EditSuccess(Metric):
    """Edit success: fraction of rows whose whole target is the teacher-forced argmax.

    ``update(pred, labels)`` takes ``pred [B, T]`` argmax ids and ``labels [B, T]`` (``-100`` = not scored),
    or classification decisions ``pred [B]`` and ``labels [B]``. Rows without a scored position are not
    counted. ``compute()`` returns successes / rows (NaN when there are no rows).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    correct: Tensor
    total: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pred: Tensor, labels: Tensor) -> None:
        """Accumulate a batch.

        Args:
            pred: ``[B, T]`` argmax token ids or ``[B]`` class decisions.
            labels: Same shape as ``pred``; ``-100`` marks unscored positions.

        """
        valid = has_target(labels)
        self.correct += (sequence_correct(pred, labels) & valid).sum()
        self.total += valid.sum()

    def compute(self) -> Tensor:
        """Return the success rate (float scalar; NaN when no row was scored)."""
        return _as_tensor(success_rate(int(self.correct), int(self.total))).to(self.correct.device)


class AccuracyDrawdown(Metric):
    """Accuracy drawdown on locality rows (the MEND paper's acc DD).

    ``update(pre_pred, post_pred, labels)`` scores the unedited (``pre``) and edited (``post``) predictions
    with the whole-answer exact match of :class:`EditSuccess`. ``compute()`` returns
    ``(pre_correct - post_correct) / rows``; positive means the edit damaged unrelated inputs.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    pre_correct: Tensor
    post_correct: Tensor
    total: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("pre_correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("post_correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pre_pred: Tensor, post_pred: Tensor, labels: Tensor) -> None:
        """Accumulate a batch of locality rows.

        Args:
            pre_pred: Predictions of the unedited model, ``[B, T]`` argmax ids or ``[B]`` decisions.
            post_pred: Predictions of the edited model, same shape.
            labels: Gold answers, same shape; ``-100`` marks unscored positions.

        """
        valid = has_target(labels)
        self.pre_correct += (sequence_correct(pre_pred, labels) & valid).sum()
        self.post_correct += (sequence_correct(post_pred, labels) & valid).sum()
        self.total += valid.sum()

    def accuracies(self) -> tuple[Tensor, Tensor]:
        """Return ``(pre_acc, post_acc)`` on the accumulated rows (NaN when there are none)."""
        total = self.total.double()
        return (self.pre_correct.double() / total).float(), (self.post_correct.double() / total).float()

    def compute(self) -> Tensor:
        """Return ``(pre_correct - post_correct) / rows`` (NaN when there are no rows)."""
        value = accuracy_drawdown_of(int(self.pre_correct), int(self.post_correct), int(self.total))
        return _as_tensor(value).to(self.total.device)


class PerplexityDrawdown(Metric):
    """Perplexity drawdown on locality text (the MEND paper's ppl DD for generation).

    ``update(pre_nll_sum, post_nll_sum, n_tokens)`` takes the summed token NLL of the unedited and edited
    models over the same scored tokens (see :func:`token_nll`). ``compute()`` returns
    ``exp(post / n) - exp(pre / n)``: each perplexity is token-weighted over the whole evaluation, as in
    the original code.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    pre_nll: Tensor
    post_nll: Tensor
    n_tokens: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("pre_nll", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("post_nll", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_tokens", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(
        self, pre_nll_sum: Tensor | float, post_nll_sum: Tensor | float, n_tokens: Tensor | int
    ) -> None:
        """Accumulate summed NLLs over a batch.

        Args:
            pre_nll_sum: Scalar, summed token NLL of the unedited model.
            post_nll_sum: Scalar, summed token NLL of the edited model over the same tokens.
            n_tokens: Scalar, number of scored tokens in both sums.

        """
        dev = self.pre_nll.device
        self.pre_nll += torch.as_tensor(pre_nll_sum).detach().to(dev, torch.float64).sum()
        self.post_nll += torch.as_tensor(post_nll_sum).detach().to(dev, torch.float64).sum()
        self.n_tokens += torch.as_tensor(n_tokens).detach().to(dev, torch.long).sum()

    def perplexities(self) -> tuple[Tensor, Tensor]:
        """Return ``(pre_ppl, post_ppl)``, token-weighted (NaN when no token was scored)."""
        n = self.n_tokens.double()
        return torch.exp(self.pre_nll / n).float(), torch.exp(self.post_nll / n).float()

    def compute(self) -> Tensor:
        """Return ``post_ppl - pre_ppl`` (NaN when no token was scored)."""
        value = perplexity_drawdown_of(float(self.pre_nll), float(self.post_nll), int(self.n_tokens))
        return _as_tensor(value).to(self.pre_nll.device)


class LocalityAgreement(Metric):
    """EasyEdit's "locality": agreement of the pre- and post-edit argmax on locality rows.

    ``update(pre_pred, post_pred, labels)``: per row, the fraction of scored positions (label != -100) where
    ``pre_pred == post_pred`` (classification ``[B]`` input: 1 if equal else 0); rows without a scored
    position are ignored. ``compute()`` returns the mean over rows (NaN when there are none).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    agree_sum: Tensor
    total: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("agree_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pre_pred: Tensor, post_pred: Tensor, labels: Tensor) -> None:
        """Accumulate a batch of locality rows.

        Args:
            pre_pred: Argmax of the unedited model, ``[B, T]`` (or ``[B]`` decisions).
            post_pred: Argmax of the edited model, same shape.
            labels: Same shape; only used as the mask of scored positions (``-100`` = not scored).

        """
        agree, valid = _agreement(pre_pred, post_pred, labels)
        self.agree_sum += agree[valid].sum().to(self.agree_sum.device)
        self.total += valid.sum()

    def compute(self) -> Tensor:
        """Return the mean per-row agreement (NaN when no row was scored)."""
        return _as_tensor(mean_agreement(float(self.agree_sum), int(self.total))).to(self.total.device)


__all__ = [
    "IGNORE_INDEX",
    "PROTOCOLS",
    "AccuracyDrawdown",
    "EditSuccess",
    "LocalityAgreement",
    "PerplexityDrawdown",
    "accuracy_drawdown_of",
    "has_target",
    "mean_agreement",
    "perplexity_drawdown_of",
    "sequence_correct",
    "success_rate",
    "token_nll",
]
