"""The losses of editor training (docs/algorithm.md §6): masked token NLL and the locality KL.

Labels are aligned with logits (see :mod:`mendlight.data.batch`), so nothing here shifts. Binary
classification logits (``[rows]``, one logit per row, labels ``[rows]`` in {0, 1, -100}) are handled by
:func:`binary_as_tokens`: the logit ``a`` becomes the two-class logits ``[0, a]`` of a one-token row, whose
softmax is ``(σ(−a), σ(a))``. The token NLL of that row is then ``−log σ(±a)`` (the paper's binary NLL), its
argmax is the sign decision (``a > 0`` → 1), and the categorical KL of two such rows is exactly the
closed-form Bernoulli KL of docs/algorithm.md §6 — so every loss and metric has one code path for both
layouts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_as_tokens(logits: torch.Tensor, labels: torch.Tensor | None = None):
    """Turn ``[rows]`` binary logits into ``[rows, 1, 2]`` two-class logits (and labels into ``[rows, 1]``).

    Sequence logits (``ndim == 3``) and labels are returned unchanged.

    Args:
        logits: ``[rows]`` binary logits or ``[rows, T, V]`` token logits.
        labels: ``[rows]`` or ``[rows, T]`` labels, or None.

    Returns:
        ``logits`` alone when ``labels`` is None, else ``(logits, labels)``, in token form.

    """
    if logits.ndim == 1:
        logits = torch.stack([torch.zeros_like(logits), logits], dim=-1).unsqueeze(1)
    if labels is not None and labels.ndim == 1:
        labels = labels.unsqueeze(1)
    return logits if labels is None else (logits, labels)


def _scored_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Float32 NLL of each scored token (label ≠ -100) and the ``[rows, positions]`` score mask.

    None when nothing is scored.
    """
    logits, labels = binary_as_tokens(logits, labels)
    mask = labels != -100
    if not mask.any():
        return None
    logp = F.log_softmax(logits[mask].float(), dim=-1)
    return -logp.gather(-1, labels[mask].unsqueeze(-1)).squeeze(-1), mask


def masked_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over the scored tokens (label ≠ -100), in float32.

    For binary logits this is ``mean −log σ(±logit)`` over the labelled rows. Returns 0 (with a gradient path)
    when nothing is scored.
    """
    scored = _scored_nll(logits, labels)
    return logits.sum() * 0.0 if scored is None else scored[0].mean()


def edit_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss an edit differentiates: the sum over edit rows of each row's mean token NLL (float32).

    With one edit row this is :func:`masked_nll`. With k simultaneous edits every row's gradient then has the
    scale it has when that edit is made alone, so a batched edit is the sum of the edits computed separately
    for each example (paper §5.3). A token mean over all k rows would instead shrink each row's gradient by
    about 1/k: MEND's normalisation statistics, fixed after training, would no longer fit (an editor trained
    on single edits would see gradients k times smaller than any in training), and ENN's inner step would
    shrink with k. For binary logits each row is one edit.
    """
    scored = _scored_nll(logits, labels)
    if scored is None:
        return logits.sum() * 0.0
    nll, mask = scored
    rows = mask.nonzero()[:, 0]
    per_row = torch.zeros(mask.shape[0], dtype=nll.dtype, device=nll.device).index_add(0, rows, nll)
    return (per_row / mask.sum(-1).clamp_min(1)).sum()


def packed_edit_nll(
    logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, n_rows: int
) -> torch.Tensor:
    """:func:`edit_nll` on packed logits: ``[N, V]`` at the scored tokens, their labels and edit rows ``[N]``.

    The sum over the ``n_rows`` edit rows of each row's mean token NLL, in float32.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    nll = F.cross_entropy(logits.float(), labels, reduction="none")
    per_row = torch.zeros(n_rows, dtype=nll.dtype, device=nll.device).index_add(0, rows, nll)
    return (per_row / torch.bincount(rows, minlength=n_rows).clamp_min(1)).sum()


def kl_locality(pre_logits: torch.Tensor, post_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``KL(p_pre ‖ p_post)`` per position, averaged over positions where ``mask`` is 1 (float32).

    The pre-edit distribution is treated as a constant target. For binary logits (``[rows]``, mask
    ``[rows]``) this is the Bernoulli KL averaged over rows.
    """
    pre_logits, mask = binary_as_tokens(pre_logits, mask)
    post_logits = binary_as_tokens(post_logits)
    keep = mask.bool()
    if not keep.any():
        return post_logits.sum() * 0.0
    return kl_terms(pre_logits[keep], post_logits[keep]).mean()


def kl_terms(pre_logits: torch.Tensor, post_logits: torch.Tensor) -> torch.Tensor:
    """``KL(p_pre ‖ p_post)`` of each row of packed logits ``[N, classes]``: ``[N]`` in float32.

    The pre-edit distribution is treated as a constant target (the terms :func:`kl_locality` averages).
    """
    pre = F.log_softmax(pre_logits.detach().float(), dim=-1)
    post = F.log_softmax(post_logits.float(), dim=-1)
    return (pre.exp() * (pre - post)).sum(-1)


def sequence_success(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row success: every scored position's argmax equals its label (rows without targets → False).

    For binary logits: the sign of the logit matches the label.
    """
    logits, labels = binary_as_tokens(logits, labels)
    mask = labels != -100
    hit = (logits.argmax(-1) == labels) | ~mask
    return hit.all(-1) & mask.any(-1)


def packed_step_losses(
    post: torch.Tensor, pre_loc: torch.Tensor, targets: torch.Tensor, equiv_labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training step's losses from its packed post-edit logits (the editors' ``scored_logits``).

    Args:
        post: ``[n_targets + n_kl, classes]``: the logits at the equivalence rows' target tokens (row-major),
            then at the locality KL's positions.
        pre_loc: ``[n_kl, classes]``: the pre-edit logits at the same locality positions.
        targets: ``[equiv rows, positions]`` boolean: the equivalence rows' target tokens.
        equiv_labels: ``[equiv rows, positions]``: the equivalence rows' labels.

    Returns:
        ``(loss_edit, loss_loc, success)``: the NLL averaged over the target tokens, the KL averaged over the
        locality positions (see :func:`masked_nll`, :func:`kl_locality`), and ``[equiv rows]`` whether
        every target token of a row is predicted (no gradient).

    """
    n_targets = int(targets.sum())
    post_equiv, post_loc = post[:n_targets], post[n_targets:]
    labels = equiv_labels[targets]
    loss_edit = masked_nll(post_equiv.unsqueeze(1), labels.unsqueeze(1))
    loss_loc = kl_locality(pre_loc.unsqueeze(1), post_loc.unsqueeze(1), torch.ones_like(post_loc[:, :1]))
    with torch.no_grad():
        rows, n_rows = targets.nonzero()[:, 0], targets.shape[0]
        hits = torch.bincount(rows, (post_equiv.argmax(-1) == labels).float(), minlength=n_rows)
        counts = torch.bincount(rows, minlength=n_rows)
        success = (hits == counts) & (counts > 0)  # every target token right
    return loss_edit, loss_loc, success
