"""FT: test-time fine-tuning of the edited weights (the paper's FT baseline, docs/algorithm.md §3.1).

For each edit FT optimises additive deltas of the same weights MEND edits, for at most ``max_steps`` steps,
stopping as soon as every target token is the argmax. Unlike the original code, the last update is always
reflected in the returned edit. FT has nothing to train: ``mendlight fit`` refuses it.
"""

from __future__ import annotations

import torch

from mendlight.data.batch import CondRows, TokenRows
from mendlight.editors.base import Editor
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
        **kwargs: base-model and reporting options of :class:`~mendlight.editors.base.Editor`.

    """

    requires_training = False

    def __init__(
        self,
        edit_lr: float = 1e-4,
        max_steps: int = 100,
        ft_optimizer: str = "rmsprop",
        grad_clip: float = 100.0,
        **kwargs,
    ) -> None:
        owner = type(self).__name__
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

    def step_loss(
        self, logits: torch.Tensor, rows: TokenRows, deltas: ParamDeltas, step: int
    ) -> torch.Tensor:
        """The loss of one fine-tuning step: the NLL of the edit targets (FT+KL adds a locality KL)."""
        return masked_nll(logits, rows["labels"])

    def edit(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """Fine-tune deltas until every target token is the argmax or ``max_steps`` updates were made."""
        deltas = {
            n: torch.zeros_like(self.base.get_parameter(n), dtype=torch.float32, requires_grad=True)
            for n in self.edit_names
        }
        opt = _OPTIMIZERS[self.hparams.ft_optimizer](list(deltas.values()), lr=self.hparams.edit_lr)
        steps = 0
        if hidden is None:
            hidden = self.bottom(rows)  # the blocks below the edited ones never change: run them once
        with torch.enable_grad():
            while True:
                logits = self.forward_rows(rows, deltas, hidden)
                if bool(sequence_success(logits, rows["labels"]).all()) or steps >= self.hparams.max_steps:
                    break
                loss = self.step_loss(logits, rows, deltas, steps)
                grads = torch.autograd.grad(loss, list(deltas.values()))
                for delta, grad in zip(deltas.values(), grads, strict=True):
                    delta.grad = grad
                torch.nn.utils.clip_grad_norm_(list(deltas.values()), self.hparams.grad_clip)
                opt.step()
                steps += 1
        self.last_steps = steps
        return {n: d.detach() for n, d in deltas.items()}
