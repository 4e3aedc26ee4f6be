"""FT: test-time fine-tuning of the edited weights (the paper's FT baseline, docs/algorithm.md §3.1).

For each edit FT optimises additive deltas of the same weights MEND edits, for at most ``max_steps`` steps,
stopping as soon as every target token is the argmax. Unlike the original code, the last update is always
reflected in the returned edit. FT has nothing to train: ``mendlight fit`` refuses it.

k simultaneous edits are k rows of one loss (the NLL averaged over all their target tokens). Each step's
gradient is computed ``lm_chunk`` rows at a time and accumulated: the step is the one-pass step, while only
one chunk's activations are held (k = 1,000 edits of SmolLM2 in one pass would hold some 20,000 tokens').
"""

from __future__ import annotations

import torch

from mendlight.data.batch import CondRows, TokenRows
from mendlight.editors.base import Editor
from mendlight.editors.rows import row_chunks
from mendlight.errors import ConfigError, check_at_least
from mendlight.losses import masked_nll, sequence_success
from mendlight.models.functional import ParamDeltas

_OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}


class FT(Editor):
    """Fine-tune the edited weights on the edit example at test time.

    Args:
        edit_lr: learning rate of the fine-tuning steps (paper: 1e-6 small models, 5e-6 GPT-Neo/J, 1e-4 T5).
        max_steps: most fine-tuning steps per edit (paper: 100).
        ft_optimizer: ``rmsprop`` (paper), ``adam`` or ``sgd``.
        grad_clip: gradient-norm clip per step (paper: 100).
        lm_chunk: edit rows per forward/backward pass of a step (k simultaneous edits are k rows); None: all
            k at once. The gradients of the chunks are summed, so the step is the same; chunks bound the
            memory of a large batched edit.
        **kwargs: base-model and reporting options of :class:`~mendlight.editors.base.Editor`.

    """

    requires_training = False

    def __init__(
        self,
        edit_lr: float = 1e-4,
        max_steps: int = 100,
        ft_optimizer: str = "rmsprop",
        grad_clip: float = 100.0,
        lm_chunk: int | None = 32,
        **kwargs,
    ) -> None:
        owner = type(self).__name__
        if lm_chunk is not None:
            check_at_least(owner, "lm_chunk", lm_chunk, 1)
        if ft_optimizer not in _OPTIMIZERS:
            raise ConfigError(
                f"{owner}: ft_optimizer={ft_optimizer!r}; choose one of {', '.join(sorted(_OPTIMIZERS))}"
            )
        check_at_least(owner, "max_steps (0: no fine-tuning step)", max_steps, 0)
        if not edit_lr > 0:
            raise ConfigError(f"{owner}: edit_lr must be positive, got {edit_lr}")
        if not grad_clip > 0:
            raise ConfigError(
                f"{owner}: grad_clip (the largest gradient norm) must be positive, got {grad_clip}"
            )
        super().__init__(**kwargs)
        self.last_steps = 0

    def nll_weight(self) -> float:
        """The weight of the edit NLL in a step's loss (FT+KL: ``c_edit_ft``)."""
        return 1.0

    def step_penalty(self, deltas: ParamDeltas, step: int) -> torch.Tensor | None:
        """A term a step's loss adds to the weighted edit NLL (FT+KL: a locality KL); None for FT."""
        return None

    def edit(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """Fine-tune deltas until every target token is the argmax or ``max_steps`` updates were made."""
        deltas = {
            n: torch.zeros_like(self.base.get_parameter(n), dtype=torch.float32, requires_grad=True)
            for n in self.edit_names
        }
        leaves = list(deltas.values())
        opt = _OPTIMIZERS[self.hparams.ft_optimizer](leaves, lr=self.hparams.edit_lr)
        chunk = self.hparams.get("lm_chunk")
        if hidden is None:
            hidden = self.bottom(rows, chunk)  # the blocks below the edited ones never change: run them once
        steps = 0
        with torch.enable_grad():
            while steps < self.hparams.max_steps:
                grads = self.step_gradients(rows, deltas, hidden, steps)
                if grads is None:
                    break
                for delta, grad in zip(leaves, grads, strict=True):
                    delta.grad = grad
                torch.nn.utils.clip_grad_norm_(leaves, self.hparams.grad_clip)
                opt.step()
                steps += 1
        self.last_steps = steps
        return {n: d.detach() for n, d in deltas.items()}

    def step_gradients(
        self, rows: TokenRows, deltas: ParamDeltas, hidden: torch.Tensor | None, step: int
    ) -> list[torch.Tensor] | None:
        """The gradients of one step's loss w.r.t. the deltas, ``lm_chunk`` rows at a time; None if solved.

        The loss is ``step_penalty + nll_weight · NLL``, the NLL averaged over every target token of the k
        rows: each chunk contributes its tokens' share of that mean, and the penalty joins the last chunk's
        pass, which also tells whether every row is already solved (every target token the argmax: then
        there is no step, and no gradient of that pass is taken).
        """
        labels = rows["labels"]
        n_scored = max(int((labels != -100).sum()), 1)
        leaves = list(deltas.values())
        parts = list(row_chunks(rows, self.hparams.get("lm_chunk"), hidden))
        total: list[torch.Tensor] | None = None
        solved = True
        for i, (_, part, part_hidden) in enumerate(parts):
            logits = self.forward_rows(part, deltas, part_hidden)
            solved = solved and bool(sequence_success(logits, part["labels"]).all())
            last = i == len(parts) - 1
            if last and solved:
                return None
            share = int((part["labels"] != -100).sum()) / n_scored
            loss = self.nll_weight() * (masked_nll(logits, part["labels"]) * share)
            penalty = self.step_penalty(deltas, step) if last else None
            if penalty is not None:
                loss = penalty + loss
            grads = torch.autograd.grad(loss, leaves)
            total = list(grads) if total is None else [a + b for a, b in zip(total, grads, strict=True)]
        return total
