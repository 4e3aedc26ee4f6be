"""What an evaluation keeps of the model's outputs: teacher-forced scores at the scored positions only.

Every number an evaluation reports (docs/design.md §5) reads the logits at the positions whose label is not
-100, and only two things there: the argmax (edit success, accuracy drawdown, EasyEdit's locality agreement,
known facts) and the log-probability of the label (perplexity drawdown, the validation loss's NLL). The
validation loss's locality KL reads whole distributions, but only as one number per position. An evaluation
therefore keeps, per row group, :class:`RowScores` — ``[rows, positions]`` tensors, a few bytes a position —
and the KL terms, never a ``[rows, positions, vocab]`` logits tensor; :func:`fill_scores` turns the packed
logits of a chunk of rows into them. A classifier's row is one position with the two classes of
:func:`mendlight.losses.binary_as_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mendlight.metrics import IGNORE_INDEX, sequence_correct


@dataclass
class RowScores:
    """Teacher-forced scores of one row group at its scored positions (label ≠ -100).

    Attributes:
        labels: ``[rows, positions]`` labels (a classifier's ``[rows]`` labels as ``[rows, 1]``).
        pred: ``[rows, positions]`` the argmax of the logits at scored positions, -100 elsewhere.
        logp: ``[rows, positions]`` float32 log-probability of the label at scored positions, 0 elsewhere.

    """

    labels: torch.Tensor
    pred: torch.Tensor
    logp: torch.Tensor

    @classmethod
    def empty(cls, labels: torch.Tensor) -> RowScores:
        """Scores of ``labels``' rows before any is filled in (see :func:`fill_scores`)."""
        return cls(
            labels,
            torch.full_like(labels, IGNORE_INDEX),
            torch.zeros(labels.shape, dtype=torch.float32, device=labels.device),
        )

    @property
    def scored(self) -> torch.Tensor:
        """``[rows, positions]`` boolean: the scored positions."""
        return self.labels != IGNORE_INDEX

    def correct(self) -> torch.Tensor:
        """``[rows]`` whole-target exact match (:func:`mendlight.metrics.sequence_correct`)."""
        return sequence_correct(self.pred, self.labels)

    def nll(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(nll_sum, n_tokens)`` over every scored position (:func:`mendlight.metrics.token_nll`)."""
        return -self.logp.sum(), self.scored.sum()

    def row_nll(self) -> tuple[list[float], list[int]]:
        """Each row's summed token NLL and its number of scored tokens."""
        sums = [float(-row.sum()) for row in self.logp]
        return sums, self.scored.sum(-1).tolist()

    def mean_nll(self) -> torch.Tensor:
        """The NLL averaged over the scored tokens (:func:`mendlight.losses.masked_nll`); 0 if none."""
        scored = self.scored
        if not scored.any():
            return self.logp.new_zeros(())
        return (-self.logp[scored]).mean()


def fill_scores(scores: RowScores, start: int, packed: torch.Tensor, at: torch.Tensor) -> None:
    """Write the scores of rows ``start:start + len(at)`` from their logits at positions ``at``.

    Args:
        scores: the group's scores (see :meth:`RowScores.empty`).
        start: the first row of the chunk within the group.
        packed: ``[N, classes]`` logits at ``at`` in row-major order (:meth:`Editor.scored_logits`).
        at: ``[chunk rows, positions]`` boolean: the positions of ``packed``; every scored position of
            the chunk is among them (others, e.g. the locality KL's, are skipped).

    """
    end = start + at.shape[0]
    labels = scores.labels[start:end]
    scored = labels != IGNORE_INDEX
    keep = scored[at]  # which packed rows are scored positions
    logits = packed[keep]
    if not logits.shape[0]:
        return
    target = labels[scored]
    scores.pred[start:end][scored] = logits.argmax(-1)
    logp = F.log_softmax(logits.float(), dim=-1)
    scores.logp[start:end][scored] = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)


@dataclass
class EditScores:
    """The scores of one evaluated batch: unedited on locality/true rows, edited on edit/equiv/locality rows.

    Attributes:
        pre_loc: the locality rows under the pre-edit model.
        post_edit: the edit rows under the edited model.
        post_equiv: the rephrase rows under the edited model.
        post_loc: the locality rows under the edited model.
        pre_true: the rows of the old targets under the pre-edit model (None without a ``true`` group).
        loc_kl: ``[n]`` float32 ``KL(pre ‖ post)`` at each position the locality KL compares
            (:meth:`~mendlight.editors.base.Editor.kl_positions`), row-major.
        latency_s: the edit's wall-clock time.

    """

    pre_loc: RowScores
    post_edit: RowScores
    post_equiv: RowScores
    post_loc: RowScores
    pre_true: RowScores | None
    loc_kl: torch.Tensor
    latency_s: float

    def loss(self, c_edit: float, c_loc: float) -> torch.Tensor:
        """The training objective on this batch: ``c_edit·NLL(rephrases, else edits) + c_loc·KL(loc)``."""
        target = self.post_equiv if self.post_equiv.labels.shape[0] else self.post_edit
        kl = self.loc_kl.mean() if self.loc_kl.numel() else self.loc_kl.new_zeros(())
        return c_edit * target.mean_nll() + c_loc * kl
