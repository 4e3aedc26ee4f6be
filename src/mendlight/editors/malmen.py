"""MALMEN: Massive Editing for Large Language Models via Meta Learning (Tan, Zhang, Fu, ICLR 2024).

MALMEN keeps MEND's editor network — the running normalisation of ``[u, δ]`` and the identity-initialised
low-rank blocks with per-weight FiLM modes (:class:`~mendlight.nn.GradientTransform`, reused as it is) — but
combines the k edits of a batch by least squares instead of summing their rank-1 updates. For each edited
weight (layout ``y = x W``, ``W`` of shape key_size × value_size):

1. keys ``K``: the weight's inputs ``u`` at the scored tokens of every edit (label ≠ -100; for the encoder of
   an encoder-decoder model and for a classifier, every token the edit loss reaches); value gradients ``D``:
   the edit loss's gradients ``δ`` w.r.t. the weight's outputs at the same tokens;
2. value shifts ``v_i = −η_ℓ (u_i · ũ_i) δ̃_i`` with ``(ũ, δ̃)`` the transformed factors: the change MEND's
   update ``−η δ̃_i ũ_iᵀ`` would make to the output at its own key;
3. ``ΔW = (KᵀK + e^{λ_ℓ} I)⁻¹ KᵀV`` (:mod:`mendlight.nn.least_squares`), with a learned step size ``η_ℓ`` and
   log-regulariser ``λ_ℓ`` per weight.

The language-model passes run over ``lm_chunk`` edit rows at a time and the editor network over
``editor_chunk`` key rows at a time; ``KᵀK`` and ``KᵀV`` are accumulated, and the meta-gradient goes through
the solve in closed form, recomputing the editor network per chunk. Beyond ``K`` and ``D`` themselves, the
memory of an edit (and of its backward pass) is set by the chunk sizes, not by k.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from mendlight.data.batch import CondRows, EditBatch, TokenRows, num_rows, token_labels
from mendlight.editors.base import Editor
from mendlight.editors.malmen_keys import reads_decoder_stream, reads_labelled_stream, subject_tokens
from mendlight.editors.malmen_prior import PRIOR_CHOICES, priors_from_datamodule
from mendlight.editors.mend import MEND
from mendlight.editors.rows import RowStack, row_chunks, rows_of_edits
from mendlight.errors import ConfigError, check_at_least
from mendlight.losses import packed_step_losses
from mendlight.metrics import sequence_correct
from mendlight.models.arch import weight_io_shape
from mendlight.models.functional import ParamDeltas, materialised
from mendlight.nn import GradientTransform
from mendlight.nn.least_squares import ValueChunks, ridge_update


class MALMEN(MEND):
    """The MALMEN editor: MEND's gradient transforms, edits combined by a per-weight least-squares solve.

    The editor network options are MEND's (``rank``, ``n_hidden``, ``init``, ``norm``, ``shared``...; the
    paper's two residual blocks are ``n_hidden: 1``). η takes the place of MEND's α (the ``alpha`` parameter,
    in its own optimizer group at ``lr_lr``); λ trains with the editor networks at the optimizer's rate.

    Args:
        edit_lr: initial value of every per-weight step size η (MALMEN's public config: 1e-6).
        lr_lr: learning rate of η, which has its own optimizer parameter group.
        log_lambda: initial value of every per-weight log-regulariser λ (the ridge weight is e^λ; MALMEN: 0).
        lm_chunk: edit rows per language-model forward/backward pass of an edit (MALMEN: 32); the memory of
            these passes grows with it, not with the number of edits.
        editor_chunk: key rows (scored tokens) per editor-network pass, in the edit and in the meta-gradient's
            recomputation.
        key_tokens: which tokens key an edit in the solve. ``answer`` (MALMEN): the scored tokens, as above.
            ``subject``: the last token of the record's subject in the edit prompt (the edit rows'
            ``subject_last``, given by the data module for records that name a subject), where ROME and MEMIT
            key their edits: one key per edit and edited weight, whose value gradient reaches the answer
            through the blocks above: edit early-to-middle blocks with it (configs/train/subject_keys.yaml).
            Layers that do not read the input tokens (an encoder-decoder model's decoder) cannot use it.
        edit_rounds: solves per edit outside training (a test-time option, 1: MALMEN's edit). Round r computes
            keys, value gradients and the least-squares update again on the model the first r − 1 rounds
            made, and adds it; the edits that already succeed there keep their keys in the solve with zero
            value shifts, and rounds stop once every edit succeeds. Training always makes one round (its
            meta-gradient goes through one solve). It changes how an editor is tested, not what it learned:
            ``test --ckpt_path`` keeps the value given on the command line.
        prior: the regulariser's shape. ``identity`` (MALMEN): ``e^λ ‖ΔW‖²``. ``keys``: ``e^λ tr(ΔWᵀCΔW)``
            with ``C`` the second moment of the weight's keys over the first ``prior_records`` training
            edits of the data module (scaled to the identity's trace): MEMIT's regulariser, which spares the
            directions all edits share (:mod:`mendlight.editors.malmen_prior`). Computed once per editor, not
            saved; a test-time option too (``test --ckpt_path`` keeps the command line's value).
        prior_records: training edits the ``keys`` prior is computed from.
        **kwargs: MEND's editor network options (``rank``, ``n_hidden``, ``init``, ``norm``, ``combine``,
            ``shared``...) and the base-model, loss and optimizer options of
            :class:`~mendlight.editors.base.Editor`.

    """

    edits_rowwise = False
    edit_rowwise = Editor.edit_rowwise
    protocol_hparams = (*Editor.protocol_hparams, "edit_rounds", "prior", "prior_records")

    def __init__(
        self,
        edit_lr: float = 1e-6,
        lr_lr: float = 1e-5,
        log_lambda: float = 0.0,
        lm_chunk: int = 32,
        editor_chunk: int = 1024,
        edit_rounds: int = 1,
        key_tokens: str = "answer",
        prior: str = "identity",
        prior_records: int = 2000,
        **kwargs,
    ) -> None:
        check_at_least("MALMEN", "lm_chunk", lm_chunk, 1)
        check_at_least("MALMEN", "editor_chunk", editor_chunk, 1)
        check_at_least("MALMEN", "edit_rounds", edit_rounds, 1)
        if key_tokens not in ("answer", "subject"):
            raise ConfigError(f"MALMEN: key_tokens must be 'answer' or 'subject', got {key_tokens!r}")
        if prior not in PRIOR_CHOICES:
            raise ConfigError(f"MALMEN: prior must be one of {', '.join(PRIOR_CHOICES)}, got {prior!r}")
        check_at_least("MALMEN", "prior_records", prior_records, 1)
        if not edit_lr > 0:
            raise ConfigError(f"MALMEN: edit_lr (the initial step size η) must be positive, got {edit_lr}")
        if not lr_lr >= 0:
            raise ConfigError(f"MALMEN: lr_lr (the learning rate of η) must be at least 0, got {lr_lr}")
        if not math.isfinite(log_lambda):
            raise ConfigError(
                f"MALMEN: log_lambda (the initial log-regulariser λ) must be finite, got {log_lambda}"
            )
        try:
            super().__init__(edit_lr=edit_lr, lr_lr=lr_lr, lm_chunk=lm_chunk, **kwargs)
        except ConfigError as err:  # MEND's network options, checked by MEND: name the editor in use
            message = str(err)
            if message.startswith("MEND: "):
                raise ConfigError(f"MALMEN: {message.removeprefix('MEND: ')}") from None
            raise
        self.log_lambda = nn.Parameter(torch.full((len(self.edit_names),), float(log_lambda)))
        self._prior_data = None  # the data module whose training edits give prior='keys' its matrices
        self._priors: dict[str, Tensor] | None = None
        #: ``(key_size, value_size)`` of every edited weight, whatever its storage layout
        self.io_shape = {n: weight_io_shape(self.base, n) for n in self.edit_names}
        self.answer_keyed = {n: reads_labelled_stream(self.base, n) for n in self.edit_names}
        if key_tokens == "subject":
            decoder = [n for n in self.edit_names if reads_decoder_stream(self.base, n)]
            if decoder:
                raise ConfigError(
                    f"MALMEN: key_tokens='subject' keys edits on the input tokens, but {decoder[0]!r} is in "
                    "the decoder of an encoder-decoder model; edit encoder weights (edit_params) or use "
                    "'answer'"
                )

    @property
    def eta(self) -> nn.Parameter:
        """The per-weight step sizes η (stored as MEND's ``alpha``)."""
        return self.alpha

    # ------------------------------------------------------------------ the language-model passes
    def key_factors(self, rows: TokenRows, hidden: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        """Keys and value gradients of every edited weight, from ``lm_chunk`` edit rows at a time.

        Args:
            rows: the k edit rows.
            hidden: their cached hidden states below the lowest edited block (computed per chunk if None).

        Returns:
            ``{weight name: (K [n, key_size], D [n, value_size])}`` in float32 (float64 for a float64 model),
            rows in edit-row order.

        """
        return {name: (keys, grads) for name, (keys, grads, _) in self.keyed_factors(rows, hidden).items()}

    def keyed_factors(
        self, rows: TokenRows, hidden: Tensor | None = None
    ) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """:meth:`key_factors` with the edit row of every key: ``{weight name: (K, D, row [n])}``."""
        parts: dict[str, tuple[list[Tensor], ...]] = {n: ([], [], []) for n in self.edit_names}
        for start, chunk, h in row_chunks(rows, int(self.hparams.lm_chunk), hidden):
            for name, factors in self._chunk_factors(chunk, h, start).items():
                for part, tensor in zip(parts[name], factors, strict=True):
                    part.append(tensor)
        out = {}
        for name in self.edit_names:
            keys, grads, key_rows = parts.pop(name)  # concatenated one weight at a time, chunks freed at once
            key_size, value_size = self.io_shape[name]
            device = self.base.get_parameter(name).device
            out[name] = (
                torch.cat(keys) if keys else torch.zeros(0, key_size, device=device),
                torch.cat(grads) if grads else torch.zeros(0, value_size, device=device),
                torch.cat(key_rows) if key_rows else torch.zeros(0, dtype=torch.long, device=device),
            )
            del keys, grads, key_rows
        return out

    def _chunk_factors(
        self, rows: TokenRows, hidden: Tensor | None, start: int = 0
    ) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """One forward/backward of the edit loss over ``rows``; each weight's ``(u, δ, row)`` at its keys."""
        capture = self.capture_edit_factors(rows, hidden)
        labels = rows["labels"]
        n_rows = num_rows(rows)
        out = {}
        for name in self.edit_names:
            u, delta = capture.factors(name)
            keep = (u != 0).any(dim=-1) & (delta != 0).any(dim=-1)  # what the gradient transform keeps
            if self.hparams.get("key_tokens", "answer") == "subject":
                keep &= subject_tokens(rows, u.shape[0], name)
                if not keep.any():
                    raise ConfigError(
                        f"MALMEN(key_tokens='subject'): the edit loss has no gradient at the subject tokens "
                        f"for {name!r} (the output of a top block at the subject reaches no answer token); "
                        "edit lower blocks (edit_params) or use key_tokens='answer'"
                    )
            elif self.answer_keyed[name] and labels.ndim == 2:
                if u.shape[0] != labels.numel():
                    raise RuntimeError(
                        f"{name!r} ran on {u.shape[0]} token rows, not on the labels' {labels.numel()}"
                    )
                keep &= (labels != -100).reshape(-1)
            row = start + torch.arange(u.shape[0], device=u.device) // max(u.shape[0] // max(n_rows, 1), 1)
            at_least_32 = torch.promote_types(u.dtype, torch.float32)  # bf16 → float32; float64 stays
            out[name] = (u[keep].to(at_least_32), delta[keep].to(at_least_32), row[keep])
        capture.clear()  # a chunk's activations must not pile up over the chunks
        return out

    @torch.no_grad()
    def succeeding_rows(self, rows: TokenRows, hidden: Tensor | None = None) -> Tensor:
        """Whether each edit row's whole target is the argmax at the model's current weights, ``[k]`` bool.

        The evaluation's edit success (teacher-forced, every scored token), ``lm_chunk`` rows at a time.
        """
        out = []
        for _, chunk, h in row_chunks(rows, int(self.hparams.lm_chunk), hidden):
            labels = token_labels(chunk)
            targets = labels != -100
            logits = self.scored_logits(chunk, targets, lambda c=chunk, h=h: self.forward_rows(c, None, h))
            pred = labels.clone()
            pred[targets] = logits.argmax(-1).to(pred.dtype)
            out.append(sequence_correct(pred, labels))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)

    # ------------------------------------------------------------------ the editor network and the solve
    def value_chunks(self, name: str, keys: Tensor, grads: Tensor) -> ValueChunks:
        """``values(start, end)``: the value shifts ``−η (u·ũ) δ̃`` of key rows ``start:end`` of one weight.

        The normalisation statistics are read, never updated (see :meth:`update_statistics`).
        """
        index = self.edit_names.index(name)
        key, mode = self.route[name]
        transform = self.transforms[key]

        def values(start: int, end: int) -> Tensor:
            u, delta = keys[start:end], grads[start:end]
            with _statistics_frozen(transform):
                u_t, d_t = transform(u, delta, mode)
            return -self.alpha[index] * (u * u_t).sum(-1, keepdim=True) * d_t

        return values

    @torch.no_grad()
    def update_statistics(self, name: str, keys: Tensor, grads: Tensor) -> None:
        """Merge one weight's keys and value gradients into its normalisers, ``editor_chunk`` rows at once."""
        transform = self.transforms[self.route[name][0]]
        step = int(self.hparams.editor_chunk)
        for start in range(0, keys.shape[0], step):
            transform.u_norm.update(keys[start : start + step])
            transform.delta_norm.update(grads[start : start + step])

    def edit(
        self, rows: TokenRows, hidden: Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """MALMEN's edit: keys and value gradients, value shifts, and each weight's least-squares update.

        The k rows of ``rows`` are k simultaneous edits. In training mode their keys join the normalisation
        statistics first (all of them, before any is normalised, so chunking changes nothing). Outside
        training, ``edit_rounds`` > 1 repeats the solve on the model the earlier rounds made (``θ + ΔW``) and
        sums the updates: each later round computes keys and value gradients on the edited model; the edits
        that already succeed there keep their keys in the solve with zero value shifts (their outputs are
        held), and only the ones that still fail ask for a shift. Rounds stop early once every edit succeeds.
        """
        deltas = self.solve_round(rows, hidden)
        rounds = 1 if self.training else int(self.hparams.get("edit_rounds", 1))
        for _ in range(rounds - 1):
            # the weights below the lowest edited block are unchanged, so cached hidden states stay valid
            with materialised(self.base, deltas):
                failing = ~self.succeeding_rows(rows, hidden)
                if not failing.any():
                    break
                more = self.solve_round(rows, hidden, failing)
            deltas = {name: deltas[name] + more[name] for name in deltas}
        return deltas

    def solve_round(
        self, rows: TokenRows, hidden: Tensor | None = None, shifted: Tensor | None = None
    ) -> ParamDeltas:
        """One round of the edit at the model's current weights: ``{weight name: ΔW}`` in storage layout.

        Args:
            rows: the k edit rows.
            hidden: their cached hidden states below the lowest edited block.
            shifted: ``[k]`` bool, the edits that ask for a value shift (None: every edit); the keys of the
                others stay in the solve with zero value shifts, so the update holds their outputs.

        """
        factors = self.keyed_factors(rows, hidden)
        deltas: ParamDeltas = {}
        for index, name in enumerate(self.edit_names):
            keys, grads, key_rows = factors.pop(name)
            if self.training:
                self.update_statistics(name, keys, grads)
            transform = self.transforms[self.route[name][0]]
            values = self.value_chunks(name, keys, grads)
            if shifted is not None:
                values = _masked_values(values, shifted[key_rows].unsqueeze(-1))
            delta = ridge_update(
                keys,
                values,
                self.io_shape[name][1],
                self.log_lambda[index],
                [self.alpha, *transform.parameters()],
                int(self.hparams.editor_chunk),
                prior=self.key_prior(name),
            )
            deltas[name] = delta if self.conv1d[name] else delta.T
        return deltas

    def attach_datamodule(self, datamodule) -> None:
        """Keep the data module: ``prior='keys'`` computes its matrices from its training edits."""
        super().attach_datamodule(datamodule)
        if datamodule is not None and datamodule is not self._prior_data:
            self._prior_data, self._priors = datamodule, None

    def key_prior(self, name: str) -> Tensor | None:
        """The regulariser's matrix ``C`` for one edited weight (None: the identity, MALMEN's)."""
        if self.hparams.get("prior", "identity") == "identity":
            return None
        if self._priors is None:
            with torch.enable_grad():
                self._priors = priors_from_datamodule(
                    self, self._prior_data, int(self.hparams.get("prior_records", 2000))
                )
        return self._priors[name]

    # ------------------------------------------------------------------ training
    def training_step(self, batch: EditBatch, batch_idx: int) -> Tensor | None:
        """One training step whose post-edit passes run over ``lm_chunk`` edits at a time.

        The loss is the base editors' ``c_edit·NLL(equiv) + c_loc·KL(pre‖post)`` (token means over the whole
        batch), computed in chunks: each chunk's share of it is backpropagated at once to the weight updates
        ``ΔW`` held as leaves, which frees that chunk's activations, and ``∂L/∂ΔW`` accumulates over the
        chunks (MALMEN's decoupling of the language-model passes from the editor's). The returned loss has the
        loss's value and, as gradient, ``Σ ⟨∂L/∂ΔW, ΔW⟩`` differentiated through the solve: exactly the
        meta-gradient of the unchunked loss. Memory is then set by ``lm_chunk`` and ``editor_chunk``, not k.
        """
        edit_rows, equiv, loc = batch["edit"], batch["equiv"], batch["loc"]
        k = num_rows(edit_rows)
        deltas = self.edit(edit_rows, cond=batch.get("cond"))
        leaves = {name: delta.detach().requires_grad_(True) for name, delta in deltas.items()}
        n_targets = max(int((token_labels(equiv) != -100).sum()), 1)
        n_kl = max(int(self.kl_positions(loc).sum()), 1)
        losses = torch.zeros(2)  # the NLL and the KL, summed over the chunks
        successes = 0
        step = int(self.hparams.lm_chunk)
        for start in range(0, k, step):
            part = self._chunk_losses(
                rows_of_edits(equiv, start, start + step), rows_of_edits(loc, start, start + step), leaves
            )
            loss_edit = part[0] * (part[3] / n_targets)  # the chunk's share of the token means
            loss_loc = part[1] * (part[4] / n_kl)
            chunk_loss = self.hparams.c_edit * loss_edit + self.hparams.c_loc * loss_loc
            if chunk_loss.requires_grad and torch.isfinite(chunk_loss):
                chunk_loss.backward()
            losses += torch.stack([loss_edit.detach(), loss_loc.detach()]).float().cpu()
            successes += int(part[2].sum())
        loss = self.finish_step(losses[0], losses[1], torch.tensor(successes / max(num_rows(equiv), 1)), k)
        if loss is None:
            return None
        grads = {name: leaf.grad for name, leaf in leaves.items() if leaf.grad is not None}
        through_solve = sum((deltas[name] * grad).sum() for name, grad in grads.items())
        if not isinstance(through_solve, Tensor):  # nothing reached the updates: a zero meta-gradient
            through_solve = sum(delta.sum() * 0.0 for delta in deltas.values())
        return loss.to(through_solve) + (through_solve - through_solve.detach())

    def _chunk_losses(
        self, equiv: TokenRows, loc: TokenRows, deltas: ParamDeltas
    ) -> tuple[Tensor, Tensor, Tensor, int, int]:
        """The NLL and KL of one chunk's rows at ``θ + deltas``, with its success per row and token counts."""
        stack = RowStack(self, {"equiv": equiv, "loc": loc})
        kl_at, pre_loc = self.pre_edit_locality(stack)
        post_rows, post_hidden = stack.select("equiv", "loc")
        n_equiv = num_rows(equiv)
        labels = token_labels(post_rows)[:n_equiv]
        targets = labels != -100
        post = self.scored_logits(
            post_rows, torch.cat([targets, kl_at]), lambda: self.forward_rows(post_rows, deltas, post_hidden)
        )
        loss_edit, loss_loc, success = packed_step_losses(post, pre_loc, targets, labels)
        return loss_edit, loss_loc, success, int(targets.sum()), int(kl_at.sum())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Two parameter groups: the editor networks and λ at the optimizer's lr, η at ``lr_lr``."""
        nets = [p for p in self.transforms.parameters() if p.requires_grad]
        groups = [{"params": [*nets, self.log_lambda]}, {"params": [self.alpha], "lr": self.hparams.lr_lr}]
        return self.optimizer_factory(groups)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Merge the normalisation statistics across DDP ranks; log the mean η and λ."""
        for module in self.transforms.modules():
            if hasattr(module, "sync_across_ranks_"):
                module.sync_across_ranks_()
        self.log("train/eta_mean", self.alpha.detach().mean())
        self.log("train/log_lambda_mean", self.log_lambda.detach().mean())


def _masked_values(values: ValueChunks, mask: Tensor) -> ValueChunks:
    """``values`` with the rows where ``mask`` (``[n, 1]`` bool) is False set to zero."""

    def masked(start: int, end: int) -> Tensor:
        chunk = values(start, end)
        return chunk * mask[start:end].to(chunk.dtype)

    return masked


@contextlib.contextmanager
def _statistics_frozen(transform: GradientTransform) -> Iterator[None]:
    """Run ``transform`` without updating its normalisation statistics (it updates them in training mode)."""
    was_training = transform.training
    transform.train(False)
    try:
        yield
    finally:
        transform.train(was_training)
