"""The losses of editor training (spec §6): masked token NLL and the locality KL.

Labels are aligned with logits (see :mod:`mendlight.data.batch`), so nothing here shifts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over the scored tokens (label ≠ -100), in float32.

    Returns 0 (with a gradient path) when no token is scored.
    """
    mask = labels != -100
    if not mask.any():
        return logits.sum() * 0.0
    logp = F.log_softmax(logits[mask].float(), dim=-1)
    return -logp.gather(-1, labels[mask].unsqueeze(-1)).mean()


def kl_locality(pre_logits: torch.Tensor, post_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``KL(p_pre ‖ p_post)`` per position, averaged over positions where ``mask`` is 1 (float32).

    The pre-edit distribution is treated as a constant target.
    """
    keep = mask.bool()
    if not keep.any():
        return post_logits.sum() * 0.0
    pre = F.log_softmax(pre_logits[keep].detach().float(), dim=-1)
    post = F.log_softmax(post_logits[keep].float(), dim=-1)
    return (pre.exp() * (pre - post)).sum(-1).mean()


def sequence_success(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row success: every scored position's argmax equals its label (rows without targets → False)."""
    mask = labels != -100
    hit = (logits.argmax(-1) == labels) | ~mask
    return hit.all(-1) & mask.any(-1)
