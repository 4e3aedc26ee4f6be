"""MEND: Model Editor Networks with Gradient Decomposition (Mitchell et al., ICLR 2022), docs/algorithm.md §1.

For each edited weight W the fine-tuning gradient of the edit loss is a sum of rank-1 terms ``δ uᵀ`` over
tokens. MEND maps every pair (u, δ) through a small learned network g (shared by all weights of one shape,
with per-layer FiLM scale/shift) to a pseudo-pair (ũ, δ̃), and edits ``W ← W − α_ℓ Σ δ̃ ũᵀ`` with a learned
step size α_ℓ per weight. This module uses the paper's minus sign (the official code's ``+`` was confirmed a
bug, mend#13), so checkpoints are not interchangeable with the original code's.
"""

from __future__ import annotations

import torch
from torch import nn

from mendlight.data.batch import CondRows, TokenRows, num_rows
from mendlight.editors.base import Editor
from mendlight.editors.rows import row_chunks
from mendlight.errors import ConfigError, check_at_least
from mendlight.losses import edit_nll, packed_edit_nll
from mendlight.models.arch import is_conv1d, weight_io_shape
from mendlight.models.factors import FactorCapture
from mendlight.models.functional import ParamDeltas
from mendlight.models.rowwise import RowwiseEdits, pad_by_row
from mendlight.models.scored_head import has_token_head, scored_positions_only
from mendlight.nn import INITS, GradientTransform, pseudo_gradient


class MEND(Editor):
    """The MEND editor: learned gradient transforms that turn one fine-tuning gradient into an edit.

    With ``independent_edits`` (an option of every editor; MEND supports it) a training batch of k records
    trains k separate edits in one vectorised pass (:meth:`edit_rowwise`).

    Args:
        rank: rank of the low-rank residual layers of the editor networks (paper: 1920).
        n_hidden: hidden layers of each editor network (the network has ``n_hidden + 1`` layers).
        init: ``"id"`` (identity init, the paper's) or ``"xavier"`` (Table 6 "No ID init").
        norm: normalise u and δ with running Welford statistics (Table 6 "No norm" = False).
        combine: one network over the concatenation ``[u, δ]`` (paper default).
        one_sided: transform only the smaller of u and δ (Table 6 "Only smaller"; needs ``combine=False``).
        x_only: transform only u (Table 6 "Only u"; needs ``combine=False``).
        delta_only: transform only δ (Table 6 "Only δ"; needs ``combine=False``).
        shared: share one network per weight shape with per-layer FiLM modes (Table 6 "No sharing" = False).
        edit_lr: initial value of every per-layer step size α (paper: 1e-4).
        lr_lr: learning rate of α, which has its own optimizer parameter group.
        lm_chunk: edit rows per forward/backward pass of an evaluation edit (k simultaneous edits are k rows;
            MALMEN's default, 32); None: all k at once. The updates are summed either way, so the edit is the
            same; chunks bound the memory of a large batched edit (in one pass, k = 1,000 edits of SmolLM2
            would hold the activations of some 20,000 tokens, tens of GB). Training edits always run in one
            pass (the normalisation statistics take the whole batch before any of it is normalised).
        **kwargs: base-model, loss and optimizer options of :class:`~mendlight.editors.base.Editor`.

    """

    edits_rowwise = True

    def __init__(
        self,
        rank: int = 1920,
        n_hidden: int = 1,
        init: str = "id",
        norm: bool = True,
        combine: bool = True,
        one_sided: bool = False,
        x_only: bool = False,
        delta_only: bool = False,
        shared: bool = True,
        edit_lr: float = 1e-4,
        lr_lr: float = 1e-4,
        lm_chunk: int | None = 32,
        **kwargs,
    ) -> None:
        check_at_least("MEND", "rank", rank, 1)
        if lm_chunk is not None:
            check_at_least("MEND", "lm_chunk", lm_chunk, 1)
        check_at_least("MEND", "n_hidden", n_hidden, 0)
        if init not in INITS:
            raise ConfigError(f"MEND: init must be one of {', '.join(map(repr, INITS))}, got {init!r}")
        sided = [
            name
            for name, on in (("one_sided", one_sided), ("x_only", x_only), ("delta_only", delta_only))
            if on
        ]
        if combine and sided:
            raise ConfigError(
                f"MEND: {sided[0]}=true transforms one side, which combine=true (one network over [u, δ]) "
                "cannot: set combine: false too"
            )
        if len(sided) > 1:
            raise ConfigError(f"MEND: {' and '.join(sided)} are mutually exclusive: set at most one")
        if not edit_lr > 0:
            raise ConfigError(f"MEND: edit_lr (the initial step size α) must be positive, got {edit_lr}")
        if not lr_lr >= 0:
            raise ConfigError(f"MEND: lr_lr (the learning rate of α) must be at least 0, got {lr_lr}")
        super().__init__(**kwargs)
        self.conv1d = {n: is_conv1d(self.base, n) for n in self.edit_names}
        shapes = {n: weight_io_shape(self.base, n) for n in self.edit_names}
        net_args = dict(
            rank=rank,
            n_hidden=n_hidden,
            init=init,
            norm=norm,
            combine=combine,
            one_sided=one_sided,
            x_only=x_only,
            delta_only=delta_only,
        )
        self.route: dict[str, tuple[str, int | None]] = {}
        nets: dict[str, GradientTransform] = {}
        if shared:
            groups: dict[tuple[int, int], list[str]] = {}
            for name in self.edit_names:
                groups.setdefault(shapes[name], []).append(name)
            for (x_dim, d_dim), names in groups.items():
                key = f"{x_dim}x{d_dim}"
                nets[key] = GradientTransform(x_dim, d_dim, n_modes=len(names), **net_args)
                self.route.update({n: (key, i) for i, n in enumerate(names)})
        else:
            for name in self.edit_names:
                key = name.replace(".", "__")
                nets[key] = GradientTransform(*shapes[name], n_modes=None, **net_args)
                self.route[name] = (key, None)
        self.transforms = nn.ModuleDict(nets)
        self.alpha = nn.Parameter(torch.full((len(self.edit_names),), float(edit_lr)))

    def capture_edit_factors(self, rows: TokenRows, hidden: torch.Tensor | None = None) -> FactorCapture:
        """One forward/backward of the edit loss over ``rows``, every edited layer's ``(u, δ)`` captured.

        The blocks below the edited ones run once without gradients (unless ``hidden`` already holds their
        output); the output head runs only on the target tokens where the model has a token head. Read the
        factors with ``capture.factors(name)``.
        """
        if hidden is None:
            hidden = self.bottom(rows)  # the blocks below the edited ones: once, without gradients
        leaves = {n: self.base.get_parameter(n).detach().requires_grad_(True) for n in self.edit_names}
        labels = rows["labels"]
        with torch.enable_grad(), FactorCapture(self.base, self.edit_names) as capture:
            if labels.ndim == 2 and has_token_head(self.base):  # the head runs on the target tokens only
                targets = labels != -100
                with scored_positions_only(self.base, targets):
                    packed = self.forward_params(rows, leaves, hidden)[0]
                loss = packed_edit_nll(packed, labels[targets], targets.nonzero()[:, 0], labels.shape[0])
            else:
                loss = edit_nll(self.forward_params(rows, leaves, hidden), labels)
            capture.backward(loss)
        return capture

    def transformed_factors(
        self, rows: TokenRows, hidden: torch.Tensor | None = None
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One forward/backward of the edit loss; each edited weight's transformed factors and their rows.

        Returns:
            ``{weight name: (ũ [N, in], δ̃ [N, out], row [N])}``: the transformed factors of the tokens kept
            by the gradient transform (both factors non-zero) and the edit row each token belongs to.

        """
        capture = self.capture_edit_factors(rows, hidden)
        n_rows = int(rows["input_ids"].shape[0])
        out = {}
        for name in self.edit_names:
            key, mode = self.route[name]
            u, delta = capture.factors(name)
            # the rows the transform keeps (padding and tokens without a gradient are dropped), in order
            keep = (u != 0).any(dim=-1) & (delta != 0).any(dim=-1)
            row = torch.arange(u.shape[0], device=u.device) // max(u.shape[0] // max(n_rows, 1), 1)
            u_t, d_t = self.transforms[key](u, delta, mode)
            out[name] = (u_t, d_t, row[keep])
        return out

    def edit(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """MEND's edit: one forward/backward of the edit loss, transformed factors, ``W − α Σ δ̃ ũᵀ``.

        The k rows of ``rows`` are k simultaneous edits: their updates are summed (a batched edit). Outside
        training, ``lm_chunk`` rows at a time (the sum is the same; see the ``lm_chunk`` option).
        """
        step, k = self.hparams.get("lm_chunk"), num_rows(rows)
        if step and k > step and not self.training:
            total: ParamDeltas = {}
            for _, part, h in row_chunks(rows, step, hidden):
                for name, delta in self.edit(part, h).items():
                    total[name] = total[name] + delta if name in total else delta
            return total
        factors = self.transformed_factors(rows, hidden)
        deltas: ParamDeltas = {}
        for i, name in enumerate(self.edit_names):
            u_t, d_t, _ = factors[name]
            deltas[name] = -self.alpha[i] * pseudo_gradient(u_t, d_t, self.conv1d[name])
        return deltas

    def edit_rowwise(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> RowwiseEdits:
        """The k rows of ``rows`` as k separate edits, in factored form (see :mod:`mendlight.models.rowwise`).

        Edit i's update of each weight is exactly the update :meth:`edit` makes from row i alone, ``−α Σ_t δ̃_t
        ũ_tᵀ`` over its tokens; it is never formed as a matrix.
        """
        k = int(rows["input_ids"].shape[0])
        factors = {}
        for i, (name, (u_t, d_t, row)) in enumerate(self.transformed_factors(rows, hidden).items()):
            u = pad_by_row(u_t.float(), row, k)
            d = pad_by_row(-self.alpha[i] * d_t.float(), row, k)
            factors[name] = (u, d)
        return RowwiseEdits(factors)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Two groups: the editor networks at the optimizer's lr, α at ``lr_lr`` (docs/algorithm.md §1.9)."""
        nets = [p for p in self.transforms.parameters() if p.requires_grad]
        return self.optimizer_factory([{"params": nets}, {"params": [self.alpha], "lr": self.hparams.lr_lr}])

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Merge the Welford statistics across DDP ranks and log the step sizes."""
        for module in self.transforms.modules():
            if hasattr(module, "sync_across_ranks_"):
                module.sync_across_ranks_()
        self.log("train/alpha_mean", self.alpha.detach().mean())
