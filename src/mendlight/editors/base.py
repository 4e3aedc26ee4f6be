"""The shared editor LightningModule: a frozen base model, the edit protocol, losses, metrics, checkpoints.

A concrete editor implements only :meth:`Editor.edit` (an edit batch → parameter deltas) and, if it learns,
its trainable modules. Everything else — the training objective ``c_edit·NLL(x'_e) + c_loc·KL(pre‖post)``,
validation/test metrics, sample tables, results files and editor-only checkpoints — lives here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import OptimizerCallable
from pytorch_lightning.loggers import TensorBoardLogger

from mendlight.checkpoints import check_editor_state
from mendlight.data.batch import (
    CondRows,
    EditBatch,
    TokenRows,
    model_inputs,
    num_rows,
    score_mask,
    token_labels,
)
from mendlight.editors.evaluation import (
    POSITION_FIELD,
    StageMetrics,
    prompt_inputs,
    record_rows,
    update_metrics,
)
from mendlight.editors.reports_tb import write_hparams_summary
from mendlight.editors.rows import RowStack, row_chunks
from mendlight.editors.scores import EditScores
from mendlight.editors.scoring import score_batch
from mendlight.editors.sequential import SequentialChain
from mendlight.errors import CheckpointError, ConfigError, TrainingStopped, check_at_least
from mendlight.losses import binary_as_tokens, packed_step_losses
from mendlight.models.arch import arch_spec, resolve_edit_params
from mendlight.models.functional import (
    ParamDeltas,
    detached,
    edited_params,
    greedy_continuations,
    materialised,
    model_logits,
    state_fingerprint,
)
from mendlight.models.length_buckets import length_buckets, right_padded
from mendlight.models.loading import load_base_model, load_tokenizer
from mendlight.models.rowwise import RowwiseEdits
from mendlight.models.scored_head import has_token_head, scored_positions_only
from mendlight.models.split import BlockSplit
from mendlight.reporting import METRIC_KEYS

log = logging.getLogger(__name__)

BASE_PREFIX = "base."
HP_METRICS = tuple(k for k in METRIC_KEYS if k != "known_fraction")  # tags of the HPARAMS tab


class Editor(pl.LightningModule):
    """Base class of every editor: wraps a frozen base model and runs the edit protocol.

    Subclasses implement :meth:`edit`. The base model is never mutated: edits are evaluated functionally.

    Args:
        base_model: base model reference: an embedded alias (``smollm2-135m``), a ``.gguf`` file, a local
            Hugging Face directory, a hub name, or ``tiny-random-<type>`` for tests.
        dtype: dtype of the frozen base weights (``float32``, ``bfloat16``, ``float16``).
        edit_params: weights to edit, as exact names or glob patterns; default: the architecture table
            (the MLP weights of the last 3 blocks).
        c_edit: weight of the edit (rephrase NLL) loss.
        c_loc: weight of the locality KL loss.
        n_samples: sample edits per validation/test epoch shown with greedy pre/post outputs in reports.
        sample_tokens: tokens generated for each sample output.
        sequential: test protocol. 0: every test batch is edited from the unedited model. N > 0: test batches
            are edited one after another in chains of N edits (batches), each edit made on the model the
            previous ones left (materialised), and every edit of a chain is evaluated after its last edit
            (the lifelong protocol).
        loc_kl: where the locality KL compares the pre- and post-edit distributions: ``"input"`` (every
            position of the locality input, the default) or ``"answer"`` (only the answer tokens, as the
            paper scores zsRE's decoder answers).
        independent_edits: train on the ``n_edits`` records of a training batch as that many *separate* edits,
            each scored on its own rephrase and locality rows, in one vectorised pass (editors that can edit
            row by row: MEND); evaluation then edits one record at a time unless ``eval_n_edits`` says
            otherwise. False (default): the records of a batch are one batched edit (their updates summed).
        max_nonfinite_steps: stop training with an error after this many consecutive steps whose loss or
            gradients were not finite (each is skipped and counted in ``skipped_steps``); such a run is
            diverging, typically from a learning rate far too high.
        eval_chunk: rows per language-model pass of an evaluation's scoring (the edit, rephrase, locality
            and true rows of a batch, before and after the edit; :mod:`mendlight.editors.scoring`); None:
            every row at once. The scores are the same either way; only the logits the metrics read are
            computed, and the memory of the passes is set by this, not by the number of edits k.
        optimizer: optimizer factory for the editor's parameters (the base is never optimised).

    """

    #: False for test-time editors (FT): ``mendlight fit`` refuses them with a clear message.
    requires_training: ClassVar[bool] = True
    #: False for editors whose edit is not a change of the weights (Cache): ``edit --save`` refuses them.
    edits_weights: ClassVar[bool] = True
    #: True for editors implementing :meth:`edit_rowwise` (``independent_edits`` training).
    edits_rowwise: ClassVar[bool] = False
    #: Init arguments that choose how an editor is evaluated, not what it learned: ``test``/``predict`` with
    #: ``--ckpt_path`` keep the values given on the command line or in the config for these instead of the
    #: ones saved in the checkpoint's hyperparameters (:meth:`mendlight.cli.MendLightCLI._parse_ckpt_path`).
    protocol_hparams: ClassVar[tuple[str, ...]] = (
        "sequential",
        "n_samples",
        "sample_tokens",
        "max_nonfinite_steps",
        "eval_chunk",
    )

    def __init__(
        self,
        base_model: str = "smollm2-135m",
        dtype: str = "float32",
        edit_params: list[str] | None = None,
        c_edit: float = 0.1,
        c_loc: float = 1.0,
        n_samples: int = 8,
        sample_tokens: int = 8,
        sequential: int = 0,
        loc_kl: str = "input",
        independent_edits: bool = False,
        max_nonfinite_steps: int = 50,
        eval_chunk: int | None = 32,
        optimizer: OptimizerCallable = torch.optim.Adam,
    ) -> None:
        owner = type(self).__name__
        if eval_chunk is not None:
            check_at_least(owner, "eval_chunk", eval_chunk, 1)
        check_at_least(owner, "sequential (0: each edit from the unedited model)", sequential, 0)
        check_at_least(owner, "max_nonfinite_steps", max_nonfinite_steps, 1)
        check_at_least(owner, "n_samples", n_samples, 0)
        check_at_least(owner, "sample_tokens", sample_tokens, 1)
        check_at_least(owner, "c_edit", c_edit, 0)
        check_at_least(owner, "c_loc", c_loc, 0)
        if loc_kl not in LOC_KL_CHOICES:
            raise ConfigError(f"{owner}: loc_kl must be one of {', '.join(LOC_KL_CHOICES)}, got {loc_kl!r}")
        if independent_edits and not self.edits_rowwise:
            raise ConfigError(
                f"{owner}: independent_edits needs an editor that edits row by row (MEND); {owner} cannot: "
                "leave it false"
            )
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer_factory = optimizer
        self.base = load_base_model(base_model, dtype)
        self.edit_names = resolve_edit_params(self.base, edit_params)
        self.splitter = _block_split(self.base, self.edit_names)
        head = self.base.get_output_embeddings()  # None for a classifier (one logit per row)
        self.vocab_size = int(head.weight.shape[0]) if head is not None else 0
        self.stage_metrics = torch.nn.ModuleDict(
            {"val_metrics": StageMetrics(), "test_metrics": StageMetrics()}
        )
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))
        self._records: list[dict] = []
        self._samples: list[dict] = []
        self._chain = SequentialChain(self)
        self._nonfinite_run = 0  # consecutive skipped steps
        self._unedited_outputs: dict[tuple, str] = {}  # greedy outputs of the unedited base, by prompt
        self._run_dir: Path | None = None
        #: set by ``--allow_other_base``: load a checkpoint trained on another base model (same shapes)
        self.allow_other_base = False
        #: the training step of the loaded checkpoint (0 without one): the step of the test dashboards
        self.checkpoint_step = 0

    # ------------------------------------------------------------------ the algorithm
    def edit(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """Compute parameter deltas that make the model produce each edit row's labels.

        Args:
            rows: the edit inputs x_e with labels y_e (k rows = k simultaneous edits).
            hidden: the rows' cached hidden states below the lowest edited block (from :meth:`bottom`), when
                the caller already has them; an editor computes them itself otherwise.
            cond: the edits' condition text (the batch's ``cond`` group; used by KnowledgeEditor).

        Returns:
            ``{weight name: delta}`` for the edited weights; differentiable w.r.t. the editor's parameters.

        """
        raise NotImplementedError

    def edit_rowwise(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> RowwiseEdits:
        """The k rows of ``rows`` as k separate edits, each applicable to its own rows only.

        Used by ``independent_edits`` training; editors that support it set :attr:`edits_rowwise`.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot edit row by row")

    def pre_edit_deltas(self) -> ParamDeltas | None:
        """The deltas of the model an edit starts from, relative to the frozen base: None (the base itself).

        Editors that train the model they edit (ENN) return their trained weights' difference; the pre-edit
        logits of training and evaluation (locality, known facts, sample outputs) use it.
        """
        return None

    # ------------------------------------------------------------------ helpers
    def attach_datamodule(self, datamodule) -> None:
        """Give the editor the run's data module; a no-op except for editors that draw extra rows (FT+KL)."""

    def setup(self, stage: str) -> None:
        """Attach the trainer's data module (see :meth:`attach_datamodule`); fix the run directory.

        Every process reads the run directory here, together (``trainer.log_dir`` is a collective call in a
        multi-process run), so that the files written later by process 0 alone need no collective call.
        A sequential test keeps each chain on one process (``eval_chain_batches``).
        """
        datamodule = getattr(self.trainer, "datamodule", None)
        self.attach_datamodule(datamodule)
        if datamodule is not None and hasattr(datamodule, "train_edits_independent"):
            datamodule.train_edits_independent = bool(self.hparams.get("independent_edits"))
        if datamodule is not None and hasattr(datamodule, "eval_chain_batches"):
            datamodule.eval_chain_batches = max(1, int(self.hparams.sequential)) if stage == "test" else 1
        trainer = self.trainer
        self._run_dir = Path(trainer.log_dir or trainer.default_root_dir)

    @property
    def tokenizer(self):
        """The base model's tokenizer (loaded lazily, shared with the data module's cache)."""
        return load_tokenizer(self.hparams.base_model)

    @property
    def pad_token_id(self) -> int:
        """Padding id used when row groups are fused into one forward pass."""
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)

    def bottom(self, rows: TokenRows, chunk: int | None = None) -> torch.Tensor | None:
        """Hidden states entering the lowest edited block (no grad), or None if the base cannot be split.

        Args:
            rows: the rows.
            chunk: rows per pass (the passes' activations are freed as they go); None: all at once.

        """
        if self.splitter is None or not num_rows(rows):
            return None
        ids, mask = rows["input_ids"], rows["attention_mask"]
        if not right_padded(mask):  # trimming columns is exact for right-padded rows only
            return self._bottom_chunks(ids, mask, chunk)
        # rows of similar length run together at their own width (models/length_buckets.py): most of the
        # padding the stacked rows carry is not computed; positions past a group's width are left as zeros
        # (padding, which no real position attends to)
        lengths = mask.sum(1).clamp(min=1)
        buckets = length_buckets(lengths)
        if len(buckets) == 1 and int(lengths.max()) == ids.shape[1]:  # nothing to trim
            return self._bottom_chunks(ids, mask, chunk)
        hidden = None
        for index in buckets:
            width = int(lengths[index].max())
            part = self._bottom_chunks(ids[index, :width], mask[index, :width], chunk)
            if hidden is None:
                hidden = part.new_zeros(ids.shape[0], ids.shape[1], part.shape[-1])
            hidden[index, :width] = part
        return hidden

    def _bottom_chunks(self, ids: torch.Tensor, mask: torch.Tensor, chunk: int | None) -> torch.Tensor:
        rows: TokenRows = {"input_ids": ids, "attention_mask": mask}  # type: ignore[typeddict-item]
        parts = [
            self.splitter.bottom(p["input_ids"], p["attention_mask"]) for _, p, _ in row_chunks(rows, chunk)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def forward_params(
        self, rows: TokenRows, params: dict[str, torch.Tensor] | None, hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of ``rows`` with some parameters substituted (``W + Δ``, or differentiable leaves).

        Token logits ``[rows, T, V]`` (decoder logits for encoder-decoder rows), or ``[rows]`` for a binary
        classifier. With cached ``hidden`` (from :meth:`bottom`) only the top blocks and the head run.
        """
        if not num_rows(rows):
            labels = rows["labels"]
            shape = (0,) if labels.ndim == 1 else (0, labels.shape[1], self.vocab_size)
            return labels.new_zeros(shape, dtype=torch.float)
        if hidden is not None:
            return self.splitter.top(hidden, rows["input_ids"], rows["attention_mask"], params)
        return model_logits(self.base, model_inputs(rows), params or None)

    def kl_positions(self, loc: TokenRows) -> torch.Tensor:
        """The positions of locality rows the KL compares, ``[rows, positions]`` (see ``loc_kl``)."""
        if self.hparams.get("loc_kl", "input") == "answer":
            return token_labels(loc) != -100
        return _kl_positions(loc)

    def scored_logits(self, rows: TokenRows, positions: torch.Tensor, forward) -> torch.Tensor:
        """The logits of ``forward()`` over ``rows`` at ``positions`` only, ``[N, classes]``, row-major.

        For a language model the output head runs on those positions only (see
        :mod:`mendlight.models.scored_head`): a training step reads a few target tokens and the locality
        positions, so most of the head's work (the largest matrix of a forward pass) and every full-size
        logits tensor are avoided. A classifier's ``[rows]`` logits become the two-class token form of
        :func:`mendlight.losses.binary_as_tokens`.

        Args:
            rows: the rows ``forward`` runs on.
            positions: ``[rows, positions]`` boolean mask (see :func:`~mendlight.data.batch.token_labels`).
            forward: computes the rows' logits (e.g. ``lambda: self.forward_rows(rows, deltas, hidden)``).

        """
        if rows["labels"].ndim == 2 and has_token_head(self.base):
            if not positions.any():  # no row (e.g. n_loc 0) or nothing scored: the head runs on nothing
                head = self.base.get_output_embeddings().weight
                return head.new_zeros(0, head.shape[0])
            with scored_positions_only(self.base, positions):
                return forward()[0]
        logits = binary_as_tokens(forward())
        return logits[positions]

    def eval_logits(
        self,
        rows: TokenRows,
        positions: torch.Tensor,
        deltas: ParamDeltas | None,
        hidden: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The logits of ``rows`` at ``θ + Δ`` at ``positions`` only, ``[N, classes]`` (the evaluation's).

        :meth:`scored_logits` of :meth:`forward_rows`. An editor that overrides :meth:`forward_rows` may
        rewrite whole logits (the cache answers a matched row at its scored positions): its logits are
        computed whole, for the rows of one evaluation chunk at a time, and then read at ``positions``.
        """

        def forward() -> torch.Tensor:
            return self.forward_rows(rows, deltas, hidden)

        if type(self).forward_rows is not Editor.forward_rows:
            return binary_as_tokens(forward())[positions]
        return self.scored_logits(rows, positions, forward)

    def forward_rows(
        self, rows: TokenRows, deltas: ParamDeltas | None = None, hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of ``rows`` at ``θ + Δ`` (or θ)."""
        return self.forward_params(rows, edited_params(self.base, deltas) if deltas else None, hidden)

    def logits(self, groups: list[TokenRows], deltas: ParamDeltas | None = None) -> list[torch.Tensor]:
        """Logits of several row groups at ``θ + Δ`` in one stacked forward pass, split back per group."""
        names = [str(i) for i in range(len(groups))]
        stack = RowStack(self, dict(zip(names, groups, strict=True)), bottom=False)
        rows, _ = stack.select(*names)
        return stack.split(self.forward_rows(rows, deltas), *names)

    def base_fingerprint(self) -> str:
        """SHA-256 of the edited weights' original values (identifies the base model in checkpoints)."""
        return state_fingerprint(self.base, list(self.edit_names))

    # ------------------------------------------------------------------ training
    def training_step(self, batch: EditBatch, batch_idx: int) -> torch.Tensor | None:
        """One training step: edit, then ``c_edit·NLL(equiv) + c_loc·KL(pre‖post)`` on locality rows.

        Logits are computed only where the losses read them (:meth:`scored_logits`): the rephrases' target
        tokens and the locality KL's positions, packed in row-major order.
        """
        equiv, loc = batch["equiv"], batch["loc"]
        stack = RowStack(self, {"edit": batch["edit"], "equiv": equiv, "loc": loc})
        kl_at, pre_loc = self.pre_edit_locality(stack)
        edit_rows, edit_hidden = stack.select("edit")
        post_rows, post_hidden = stack.select("equiv", "loc")
        n_equiv = num_rows(equiv)
        targets = token_labels(post_rows)[:n_equiv] != -100
        positions = torch.cat([targets, kl_at])
        if self.hparams.get("independent_edits") and num_rows(edit_rows) > 1:
            edits = self.edit_rowwise(edit_rows, hidden=edit_hidden, cond=batch.get("cond"))
            owner = torch.cat([equiv["edit_index"], loc["edit_index"]])  # the edit of each post row
            with edits.applied(self.base, owner):
                post = self.scored_logits(
                    post_rows, positions, lambda: self.forward_params(post_rows, None, post_hidden)
                )
        else:
            deltas = self.edit(edit_rows, hidden=edit_hidden, cond=batch.get("cond"))
            post = self.scored_logits(
                post_rows, positions, lambda: self.forward_rows(post_rows, deltas, post_hidden)
            )
        loss_edit, loss_loc, success = packed_step_losses(
            post, pre_loc, targets, token_labels(post_rows)[:n_equiv]
        )
        return self.finish_step(loss_edit, loss_loc, success.float().mean(), num_rows(batch["edit"]))

    def pre_edit_locality(self, stack: RowStack) -> tuple[torch.Tensor, torch.Tensor]:
        """The locality KL's positions of the stack's ``loc`` rows and the pre-edit logits there (no grad).

        Returns:
            ``(kl_at [rows, positions] bool, pre_loc [n_kl, classes])`` (see :meth:`scored_logits`).

        """
        loc_rows, loc_hidden = stack.select("loc")
        kl_at = self.kl_positions(loc_rows)
        with torch.no_grad():
            pre_deltas = self.pre_edit_deltas()
            pre_loc = self.scored_logits(
                loc_rows, kl_at, lambda: self.forward_rows(loc_rows, pre_deltas, loc_hidden)
            )
        return kl_at, pre_loc

    def finish_step(
        self, loss_edit: torch.Tensor, loss_loc: torch.Tensor, es_equiv: torch.Tensor, k: int
    ) -> torch.Tensor | None:
        """The step's loss ``c_edit·loss_edit + c_loc·loss_loc``, logged; None (a skipped step) if not finite.

        Args:
            loss_edit: the equivalence rows' NLL.
            loss_loc: the locality KL.
            es_equiv: the share of equivalence rows with every target token right (logged only).
            k: the edits of the step (the logged values' batch size).

        """
        loss = self.hparams.c_edit * loss_edit + self.hparams.c_loc * loss_loc
        if not self._agreed(bool(torch.isfinite(loss))):
            self._skip_step("non-finite loss")
            self.log("train/skipped_steps", self.skipped_steps.float(), batch_size=k)
            return None
        self.log_dict(
            {
                "train/loss": loss,
                "train/loss_edit": loss_edit,
                "train/loss_loc": loss_loc,
                "train/es_equiv": es_equiv,
            },
            prog_bar=True,
            batch_size=k,
        )
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip (and count) an optimizer step whose accumulated gradients are not finite."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads and not all(torch.isfinite(g).all() for g in grads):
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
            self._skip_step("non-finite gradients")
        elif grads:  # a real step (a skipped loss leaves no gradients: the count goes on)
            self._nonfinite_run = 0
        self.log("train/skipped_steps", self.skipped_steps.float())

    def _agreed(self, ok: bool) -> bool:
        """``ok`` on every process (a multi-process run skips a step everywhere or nowhere)."""
        if self._trainer is None or self.trainer.world_size == 1:
            return ok
        return bool(self.trainer.strategy.reduce_boolean_decision(ok, all=True))

    def _skip_step(self, why: str) -> None:
        """Count a skipped step; stop training after ``max_nonfinite_steps`` consecutive ones."""
        self.skipped_steps += 1
        self._nonfinite_run += 1
        log.warning(
            "skipping step %d: %s (%d skipped so far, %d in a row)",
            self.global_step,
            why,
            int(self.skipped_steps),
            self._nonfinite_run,
        )
        limit = int(self.hparams.get("max_nonfinite_steps", 50))
        if self._nonfinite_run >= limit:
            raise TrainingStopped(
                f"training stopped at step {self.global_step}: {limit} consecutive steps had a non-finite "
                f"loss or non-finite gradients ({int(self.skipped_steps)} skipped in all; the last: {why}). "
                "The run is diverging: lower the learning rates (--model.init_args.optimizer.init_args.lr, "
                "edit_lr, lr_lr); --model.init_args.max_nonfinite_steps sets this limit",
                reason="non-finite",
            )

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters the optimizer may update: never the base model's."""
        return [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith(BASE_PREFIX)]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """One optimizer over the editor's own parameters (editors with groups override this)."""
        params = self.trainable_parameters()
        if not params:
            raise RuntimeError(f"{type(self).__name__} has no trainable parameters; it is a test-time editor")
        return self.optimizer_factory(params)

    # ------------------------------------------------------------------ evaluation
    def evaluate_batch(
        self, batch: EditBatch, deltas: ParamDeltas | None = None, latency: float | None = None
    ) -> EditScores:
        """The timed edit of one evaluation batch, and its rows' scores before and after it.

        The edit is timed on its own (``edit()`` runs its full forward/backward; editors enable gradients
        where they need them, and no graph to the editor's parameters is kept). The scoring passes then run
        ``eval_chunk`` rows at a time and keep only what the metrics read (:mod:`mendlight.editors.scoring`).
        Given ``deltas`` (sequential editing: the model after a chain of edits) and their ``latency``, no
        edit is made and the batch is evaluated at ``θ + deltas``.
        """
        if deltas is None:
            start = time.perf_counter()
            with torch.no_grad():  # kept detached: no graph to the editor's parameters, chunk after chunk
                deltas = detached(self.edit(batch["edit"], cond=batch.get("cond")))
            latency = time.perf_counter() - start
        self._last_deltas = deltas
        return score_batch(self, batch, deltas, latency)

    def edit_from(self, rows: TokenRows, cond: CondRows | None, current: ParamDeltas | None) -> ParamDeltas:
        """One more edit of the model ``θ₀ + current``: the deltas of the model after it (sequential editing).

        ``current`` is written into the weights while the edit is computed (and restored exactly after), so
        the edit sees the model the previous edits made; the result is ``current`` plus the new edit.
        """
        if not current:
            with torch.no_grad():
                return detached(self.edit(rows, cond=cond))
        with materialised(self.base, current), torch.no_grad():
            new = detached(self.edit(rows, cond=cond))
        return {n: current.get(n, 0) + new.get(n, 0) for n in {**current, **new}}

    def _eval_step(self, batch: EditBatch, stage: str, batch_idx: int = 0) -> None:
        if batch.get("padding"):
            return  # a multi-process run's padding batch (mendlight.data.sampling.EvalUnitSampler)
        if stage == "test" and self.hparams.sequential:
            self._chain.add(batch, batch_idx)
            return
        self._finish_eval(batch, stage, self.evaluate_batch(batch))

    def _finish_eval(self, batch: EditBatch, stage: str, out: EditScores, extra: dict | None = None) -> None:
        """Metrics, logs, per-record rows and samples of one evaluated batch."""
        loss = out.loss(self.hparams.c_edit, self.hparams.c_loc)
        metrics = self.stage_metrics[f"{stage}_metrics"]
        update_metrics(metrics, out)
        metrics.loss.update(loss.detach(), weight=num_rows(batch["edit"]))
        rows = record_rows(batch, out)
        for row, position in zip(rows, _positions(batch, len(rows)), strict=True):
            row.update(extra or {})
            row[POSITION_FIELD] = position
        self._add_samples(batch, rows, self._last_deltas)
        if stage == "test":
            self._records.extend(rows)

    def greedy_outputs(
        self, rows: TokenRows, deltas: ParamDeltas | None, max_new_tokens: int | None = None
    ) -> list[str]:
        """What the model at ``θ + Δ`` (or θ) outputs for each row's prompt, as text for reports.

        Generative rows get ``sample_tokens`` greedy tokens after the prompt (decoder tokens for
        encoder-decoder rows; ``max_new_tokens`` overrides it); classification rows get the predicted label
        with its probability.
        """
        if rows["labels"].ndim == 1:
            with torch.no_grad():
                probs = torch.sigmoid(self.forward_rows(rows, deltas).float()).tolist()
            return [f"{'true' if p > 0.5 else 'false'} (p_true={p:.2f})" for p in probs]
        ids, mask = prompt_inputs(rows)
        eos, n = self.tokenizer.eos_token_id, max_new_tokens or self.hparams.sample_tokens
        if deltas:
            out = greedy_continuations(self.base, deltas, ids, mask, n, eos)
            return [self.tokenizer.decode(o, skip_special_tokens=True) for o in out]
        # The unedited model's output of a prompt never changes (the base is frozen): every validation
        # shows the same sample edits, so their pre-edit outputs are decoded once.
        keys = [(tuple(r[m.bool()].tolist()), n) for r, m in zip(ids, mask, strict=True)]
        todo = [i for i, key in enumerate(keys) if key not in self._unedited_outputs]
        if todo:
            out = greedy_continuations(self.base, None, ids[todo], mask[todo], n, eos)
            if len(self._unedited_outputs) > 4096:
                self._unedited_outputs.clear()
            for i, tokens in zip(todo, out, strict=True):
                self._unedited_outputs[keys[i]] = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return [self._unedited_outputs[key] for key in keys]

    def _add_samples(self, batch: EditBatch, rows: list[dict], deltas: ParamDeltas) -> None:
        room = self.hparams.n_samples - len(self._samples)
        if room <= 0:
            return
        edit = {k: v[:room] for k, v in batch["edit"].items()}
        pre = self.greedy_outputs(edit, self.pre_edit_deltas())  # type: ignore[arg-type]
        post = self.greedy_outputs(edit, deltas)  # type: ignore[arg-type]
        for row, a, b in zip(rows, pre, post, strict=False):
            row["pre_output"], row["post_output"] = a, b
            self._samples.append(row)

    def validation_step(self, batch: EditBatch, batch_idx: int) -> None:
        """Edit each validation batch from the unedited base and update ``val/*`` metrics."""
        self._eval_step(batch, "val", batch_idx)

    def test_step(self, batch: EditBatch, batch_idx: int) -> None:
        """Edit each test batch from the unedited base; collect per-record rows for ``results.json``."""
        self._eval_step(batch, "test", batch_idx)

    def predict_step(self, batch: EditBatch, batch_idx: int) -> list[dict]:
        """Per-record results with greedy pre/post outputs; ``mendlight predict`` writes predictions.jsonl."""
        if batch.get("padding"):
            return []
        out = self.evaluate_batch(batch)
        rows = record_rows(batch, out)
        pre = self.greedy_outputs(batch["edit"], self.pre_edit_deltas())
        post = self.greedy_outputs(batch["edit"], self._last_deltas)
        for row, a, b, position in zip(rows, pre, post, _positions(batch, len(rows)), strict=True):
            row["pre_output"], row["post_output"] = a, b
            row[POSITION_FIELD] = position
        self._records.extend(rows)
        return rows

    def on_predict_start(self) -> None:
        """Reset the per-record rows."""
        self._records = []

    def on_predict_epoch_end(self) -> None:
        """Write ``predictions.jsonl`` (one row per record) into the run directory."""
        from mendlight.editors.reports import write_predictions

        write_predictions(self)

    # ------------------------------------------------------------------ epoch hooks and reports
    def on_validation_epoch_start(self) -> None:
        """Reset the sample table."""
        self._samples = []

    on_test_epoch_start = on_validation_epoch_start

    def on_test_start(self) -> None:
        """Reset the per-record rows and the sequential chain."""
        self._records = []
        self._chain = SequentialChain(self)

    def _log_epoch_metrics(self, stage: str) -> None:
        """Log ``<stage>/<metric>`` for the epoch, reduced over every process.

        Metrics are logged here, at the end of the epoch, not per batch: in a multi-process run a process may
        hold fewer real batches than another (or only padding), and Lightning reduces only the keys each
        process logged, which must then be the same everywhere.
        """
        values = self.stage_metrics[f"{stage}_metrics"].epoch_values()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value.float())

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics; write the sample edits table to TensorBoard."""
        from mendlight.editors.reports import log_samples

        self._log_epoch_metrics("val")
        log_samples(self, "val")

    def on_test_epoch_end(self) -> None:
        """Write the sample table, ``results.json``/``results.md`` and the HPARAMS summary."""
        self._chain.evaluate()  # a sequential chain still open (normally closed on the last batch)
        self._log_epoch_metrics("test")
        from mendlight.editors.reports import finish_test

        finish_test(self)

    def on_fit_start(self) -> None:
        """Register the hyperparameters with real metric tags so TensorBoard's HPARAMS tab fills in."""
        if isinstance(self.logger, TensorBoardLogger) and self.trainer.is_global_zero:
            write_hparams_summary(self.logger, self.dashboard_hparams(), [f"val/{m}" for m in HP_METRICS])

    def loggable_hparams(self) -> dict[str, Any]:
        """Hyperparameters as primitives (class name included) for TensorBoard."""
        hp = {k: v for k, v in self.hparams.items() if not k.startswith("_")}
        hp["editor"] = type(self).__name__
        return {k: (v if isinstance(v, int | float | str | bool) else str(v)) for k, v in hp.items()}

    def dashboard_hparams(self) -> dict[str, Any]:
        """:meth:`loggable_hparams` and the data module's hyperparameters as ``data.<name>`` (HPARAMS tab)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        data = dict(getattr(datamodule, "hparams", {}) or {})
        hp = {f"data.{k}": v for k, v in data.items() if not k.startswith("_")}
        hp = {k: (v if isinstance(v, int | float | str | bool) else str(v)) for k, v in hp.items()}
        return {**self.loggable_hparams(), **hp}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep base weights out of checkpoints; record the base model's identity instead."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(BASE_PREFIX)]:
            del state[key]
        checkpoint["mendlight"] = {
            "base_model": self.hparams.base_model,
            "edit_params": list(self.edit_names),
            "edited_weights_sha256": self.base_fingerprint(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refill base weights from the loaded base (strict loading still catches editor-key drift)."""
        state = checkpoint["state_dict"]
        own = self.state_dict()
        for key, value in own.items():
            if key.startswith(BASE_PREFIX):
                state.setdefault(key, value)
        info = checkpoint.get("mendlight", {})
        self.checkpoint_step = int(checkpoint.get("global_step", 0) or 0)  # test scalars sit at this step
        check_editor_state(type(self).__name__, state, own)
        if info.get("edit_params") and list(info["edit_params"]) != list(self.edit_names):
            raise CheckpointError(
                f"the checkpoint edits {info['edit_params']} but this editor edits {self.edit_names}; "
                "use the config the checkpoint was trained with (-c runs/<name>/version_N/config.yaml)"
            )
        if info.get("edited_weights_sha256") and info["edited_weights_sha256"] != self.base_fingerprint():
            message = (
                f"the checkpoint was trained on base model {info.get('base_model')!r}, whose edited weights "
                f"differ from those of {self.hparams.base_model!r}"
            )
            if not self.allow_other_base:
                raise CheckpointError(
                    f"{message}; pass the base model it was trained on, or --allow_other_base true to apply "
                    "it to this one deliberately"
                )
            log.warning("%s (allowed by --allow_other_base)", message)


#: Choices of the ``loc_kl`` option: the positions the locality KL compares.
LOC_KL_CHOICES = ("input", "answer")


def _kl_positions(rows: TokenRows) -> torch.Tensor:
    """The positions the locality KL reads, ``[rows, positions]`` (every row of a classifier)."""
    mask = score_mask(rows).bool()
    return mask if mask.ndim == 2 else mask.unsqueeze(1)


def _positions(batch: EditBatch, n: int) -> list[int | None]:
    """The split positions of a batch's records (None for batches made outside the data loader)."""
    positions = batch.get("meta", {}).get("positions")
    return list(positions) if positions is not None else [None] * n


def _block_split(model: torch.nn.Module, edit_names: list[str]) -> BlockSplit | None:
    """A split before the lowest edited block of a causal LM; None for other layouts or off-block weights."""
    try:
        spec = arch_spec(model)
    except ValueError:
        return None
    if spec.kind != "causal":
        return None
    blocks = spec.blocks
    prefix = blocks + "."
    indices = []
    for name in edit_names:
        if not name.startswith(prefix):
            return None
        indices.append(int(name[len(prefix) :].split(".", 1)[0]))
    return BlockSplit(model, blocks, min(indices))
