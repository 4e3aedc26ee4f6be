"""ENN: Editable Neural Networks (Sinitsin et al., 2020) as the MEND paper runs it (docs/algorithm.md §3.3).

ENN edits with plain gradient descent, ``W' = W − η_ℓ ∇_W NLL(x_e, y_e)`` (``n_edit_steps`` steps, default 1),
with learned per-layer inner learning rates η_ℓ, and *trains the model it edits* so that such steps work:
the base's top blocks (from the lowest edited block up) are trainable copies θ of the frozen weights θ₀. The
outer objective is MEND's, ``c_edit·NLL(x'_e | θ') + c_loc·KL(p_θ(x_loc) ‖ p_θ'(x_loc))``, plus the
base-locality term ``c_base·KL(p_θ₀(x_loc) ‖ p_θ(x_loc))`` that keeps the trained model near the original.
The inner step is differentiated through (second order, MAML) unless ``first_order`` is set.

The frozen base is still never mutated: θ lives in the editor, and an edit is returned as deltas from θ₀
(``θ' − θ₀`` for every trained weight), so the shared protocol evaluates ``f_θ₀+Δ = f_θ'`` and measures
drawdown against the pre-edit model ``f_θ`` (:meth:`ENN.pre_edit_deltas`).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from mendlight.data.batch import CondRows, EditBatch, TokenRows, score_mask
from mendlight.editors.base import Editor
from mendlight.editors.rows import row_chunks
from mendlight.errors import ConfigError, check_at_least
from mendlight.losses import edit_nll, kl_locality
from mendlight.models.arch import arch_spec
from mendlight.models.functional import ParamDeltas, detached


def _key(name: str) -> str:
    return name.replace(".", "__")


def top_block_params(model: torch.nn.Module, edit_names: list[str]) -> list[str]:
    """Names of the parameters ENN trains: every block from the lowest edited one up, per block group.

    An edited weight outside the architecture table's block groups is trained on its own.
    """
    try:
        groups = [g.blocks for g in arch_spec(model).groups]
    except ValueError:
        groups = []
    lowest: dict[str, int] = {}
    loose: list[str] = []
    for name in edit_names:
        group = next((g for g in groups if name.startswith(g + ".")), None)
        if group is None:
            loose.append(name)
            continue
        index = int(name[len(group) + 1 :].split(".", 1)[0])
        lowest[group] = min(index, lowest.get(group, index))
    names = []
    for name, _ in model.named_parameters():
        group = next((g for g in lowest if name.startswith(g + ".")), None)
        if group is not None and int(name[len(group) + 1 :].split(".", 1)[0]) >= lowest[group]:
            names.append(name)
    return names + [n for n in loose if n not in names]


class ENN(Editor):
    """The ENN editor: learned inner learning rates and editable training of the base's top blocks.

    Args:
        edit_lr: initial value of every inner learning rate η_ℓ (paper: 1e-2).
        lr_lr: learning rate of η in its own optimizer group; default: the optimizer's lr.
        n_edit_steps: gradient steps per edit (paper: 1).
        first_order: do not differentiate through the inner step (first-order MAML).
        c_base: weight of the base-locality KL to the frozen original (paper: back-propagated unweighted).
        lm_chunk: edit rows per forward/backward pass of an evaluation edit (k simultaneous edits are k rows);
            None: all k at once. The gradient is the same; chunks bound the memory of a large batched edit.
        **kwargs: base-model, loss and optimizer options of :class:`~mendlight.editors.base.Editor`
            (the paper's ENN outer optimizer: Adam at 1e-5).

    """

    def __init__(
        self,
        edit_lr: float = 1e-2,
        lr_lr: float | None = None,
        n_edit_steps: int = 1,
        first_order: bool = False,
        c_base: float = 1.0,
        lm_chunk: int | None = 32,
        **kwargs,
    ) -> None:
        check_at_least("ENN", "n_edit_steps", n_edit_steps, 1)
        if lm_chunk is not None:
            check_at_least("ENN", "lm_chunk", lm_chunk, 1)
        if not edit_lr > 0:
            raise ConfigError(
                f"ENN: edit_lr (the initial inner learning rate) must be positive, got {edit_lr}"
            )
        if lr_lr is not None and not lr_lr >= 0:
            raise ConfigError(
                f"ENN: lr_lr (the learning rate of the inner rates) must be at least 0, got {lr_lr}"
            )
        if not c_base >= 0:
            raise ConfigError(f"ENN: c_base must be at least 0, got {c_base}")
        super().__init__(**kwargs)
        self.trained_names = top_block_params(self.base, self.edit_names)
        self.theta = nn.ParameterDict(
            {
                _key(n): nn.Parameter(self.base.get_parameter(n).detach().float().clone())
                for n in self.trained_names
            }
        )
        self.inner_lr = nn.Parameter(torch.full((len(self.edit_names),), float(edit_lr)))
        self._start: dict[str, torch.Tensor] | None = None

    def _theta(self) -> dict[str, torch.Tensor]:
        """The trained weights θ by full parameter name (in the base's dtype for the forward).

        During :meth:`edit_from` these are the weights of the model that earlier edits of a chain left.
        """
        if self._start is not None:
            return dict(self._start)
        out = {}
        for name in self.trained_names:
            weight = self.theta[_key(name)]
            out[name] = weight.to(self.base.get_parameter(name).dtype)
        return out

    def _as_deltas(self, params: dict[str, torch.Tensor]) -> ParamDeltas:
        return {n: p - self.base.get_parameter(n).to(p.dtype) for n, p in params.items()}

    def pre_edit_deltas(self) -> ParamDeltas:
        """ENN edits its trained model θ: the pre-edit model is ``θ₀ + (θ − θ₀)``."""
        return self._as_deltas(self._theta())

    def edit(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """``n_edit_steps`` steps ``W ← W − η_ℓ ∇_W NLL`` on the edited weights of θ; returns ``θ' − θ₀``.

        The NLL is the sum over the k edit rows of each row's mean (:func:`~mendlight.losses.edit_nll`), so
        its gradient is the sum of the gradients of any split of the rows: outside training it is computed
        ``lm_chunk`` rows at a time (training edits, differentiated through, run in one pass).
        """
        chunk = None if self.training else self.hparams.get("lm_chunk")
        if hidden is None:
            hidden = self.bottom(rows, chunk)
        create_graph = self.training and not self.hparams.first_order
        # Second order needs a differentiable attention backward: PyTorch's fused CPU/flash SDPA kernels
        # have none, the math kernel has.
        kernels = sdpa_kernel(SDPBackend.MATH) if create_graph else contextlib.nullcontext()
        with torch.enable_grad(), kernels:
            params = self._theta()  # with gradients even under no_grad (θ cast to a bfloat16 base's dtype)
            for _ in range(self.hparams.n_edit_steps):
                grads = self._nll_gradients(rows, params, hidden, chunk, create_graph)
                params = dict(params)
                for i, (name, grad) in enumerate(zip(self.edit_names, grads, strict=True)):
                    params[name] = params[name] - self.inner_lr[i] * grad
        return self._as_deltas(params)

    def _nll_gradients(
        self,
        rows: TokenRows,
        params: dict[str, torch.Tensor],
        hidden: torch.Tensor | None,
        chunk: int | None,
        create_graph: bool,
    ) -> list[torch.Tensor]:
        """The edit NLL's gradient w.r.t. each edited weight of ``params``: summed over chunks of rows."""
        weights = [params[n] for n in self.edit_names]
        total: list[torch.Tensor] = []
        for _, part, part_hidden in row_chunks(rows, chunk, hidden):
            loss = edit_nll(self.forward_params(part, params, part_hidden), part["labels"])
            grads = torch.autograd.grad(loss, weights, create_graph=create_graph)
            total = [a + b for a, b in zip(total, grads, strict=True)] if total else list(grads)
        return total

    def edit_from(self, rows: TokenRows, cond: CondRows | None, current: ParamDeltas | None) -> ParamDeltas:
        """One more edit of ``θ₀ + current``: the gradient step starts from that model's weights."""
        if current:
            edited = set(self.edit_names)
            self._start = {
                n: (self.base.get_parameter(n) + current[n]).detach().requires_grad_(n in edited)
                for n in self.trained_names
            }
        try:
            return detached(self.edit(rows, cond=cond))
        finally:
            self._start = None

    def training_step(self, batch: EditBatch, batch_idx: int) -> torch.Tensor | None:
        """MEND's objective on θ' plus ``c_base·KL(p_θ₀ ‖ p_θ)`` on the locality rows (ENN's base loss)."""
        loss = super().training_step(batch, batch_idx)
        if loss is None:
            return None
        loc = batch["loc"]
        hidden = self.bottom(loc)
        with torch.no_grad():
            original = self.forward_rows(loc, None, hidden)
        trained = self.forward_rows(loc, self.pre_edit_deltas(), hidden)
        loss_base = kl_locality(original, trained, score_mask(loc))
        self.log("train/loss_base", loss_base, batch_size=int(batch["edit"]["input_ids"].shape[0]))
        return loss + self.hparams.c_base * loss_base

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Two groups: θ at the optimizer's lr, the inner learning rates at ``lr_lr`` (if given)."""
        inner = {"params": [self.inner_lr]}
        if self.hparams.lr_lr is not None:
            inner["lr"] = self.hparams.lr_lr
        return self.optimizer_factory([{"params": list(self.theta.parameters())}, inner])

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Log the mean inner learning rate."""
        self.log("train/inner_lr_mean", self.inner_lr.detach().mean())
