"""The ``mendlight`` command: LightningCLI with ``fit``, ``validate``, ``test``, ``predict`` and ``edit``.

Editors and data modules are chosen by class (``--model MEND``, ``--data EditDataModule``) or by a config
file (``-c configs/smollm2_facts.yaml``). Runs land in ``runs/<config stem>/version_N/`` with the resolved
``config.yaml``, TensorBoard events, checkpoints and, for ``test``, ``results.json``/``results.md``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import ArgsType, LightningCLI, SaveConfigCallback

from mendlight.callbacks import LastCheckpoint, TextProgress
from mendlight.data.module import EditDataModule
from mendlight.editors import Editor

DEFAULT_RUN_NAME = "mendlight"


class MendTrainer(Trainer):
    """Lightning's Trainer plus the ``edit`` subcommand."""

    def edit(
        self,
        model: Editor,
        datamodule: EditDataModule | None = None,
        ckpt_path: str | None = None,
        prompt: str | None = None,
        target: str | None = None,
        rephrases: list[str] | None = None,
        file: str | None = None,
        save: str | None = None,
        overwrite: bool = False,
        max_new_tokens: int = 12,
        weights_only: bool | None = None,
    ) -> dict:
        """Apply edits with an editor and print pre-/post-edit greedy outputs; optionally save the model.

        Args:
            model: the editor (from ``-c`` config; its trained weights come from ``ckpt_path``).
            datamodule: tokenises the edit (its tokenizer is the base model's).
            ckpt_path: trained editor checkpoint (needed for MEND; FT needs none).
            prompt: the edit prompt, e.g. "The capital of France is".
            target: the new target, e.g. "Rome".
            rephrases: extra prompts to check the edit generalises to.
            file: a JSONL file of edit records applied together (instead of prompt/target).
            save: write the edited model to this directory as a plain Hugging Face model; it must be new or
                empty (checked before the edit is computed) and never the base model's own directory.
            overwrite: allow ``save`` to replace the files of a non-empty directory.
            max_new_tokens: tokens of greedy output shown per prompt.
            weights_only: load the checkpoint with ``torch.load(weights_only=...)``; default True (safe).

        """
        from mendlight.edit_command import run_edit

        return run_edit(
            model,
            datamodule,
            ckpt_path=ckpt_path,
            prompt=prompt,
            target=target,
            rephrases=list(rephrases or []),
            file=file,
            save=save,
            overwrite=overwrite,
            max_new_tokens=max_new_tokens,
            weights_only=weights_only is not False,
        )


class TBSaveConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` and also show the resolved config in TensorBoard's TEXT tab."""

    def save_config(self, trainer: Trainer, pl_module, stage: str) -> None:
        """Write the resolved config as indented text (a code block in TensorBoard)."""
        experiment = getattr(trainer.logger, "experiment", None)
        if hasattr(experiment, "add_text"):
            text = self.parser.dump(self.config, skip_none=False)
            experiment.add_text("config", "    " + text.replace("\n", "\n    "), 0)


class MendLightCLI(LightningCLI):
    """LightningCLI with the ``edit`` subcommand, run names from config stems, and linked tokenizers."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus ``edit``."""
        return {**LightningCLI.subcommands(), "edit": {"model", "datamodule"}}

    def add_arguments_to_parser(self, parser) -> None:
        """Link the data module's tokenizer to the editor's base model; add the checkpoint callback."""
        parser.link_arguments("model.init_args.base_model", "data.init_args.tokenizer")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.save_last": False,
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best-{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Build the trainer; ``--trainer.enable_checkpointing false`` drops the checkpoint callbacks.

        The ``checkpoint``/``last_checkpoint`` callbacks are always configured, and Lightning refuses a
        trainer with checkpointing disabled that holds a ``ModelCheckpoint``; turning checkpointing off
        should just mean no checkpoints.
        """
        if config.get("enable_checkpointing") is False:
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
        return super()._instantiate_trainer(config, callbacks)

    def _parse_ckpt_path(self) -> None:
        """Rebuild the editor from the checkpoint's hyperparameters, except its evaluation protocol.

        Lightning replaces the ``model`` section with the hyperparameters saved in ``--ckpt_path``, which is
        right for what the editor learned (its weights must load) but silently drops test-protocol choices
        such as ``--model.init_args.sequential 100``: those (``Editor.protocol_hparams``) keep the values
        of the command line and configs.
        """
        subcommand = self.config.get("subcommand")
        model = self.config[subcommand].get("model") if subcommand else None
        init_args = getattr(model, "init_args", None)
        kept = {}
        if init_args is not None:
            protocol = getattr(_editor_class(model.class_path), "protocol_hparams", Editor.protocol_hparams)
            kept = {key: init_args[key] for key in protocol if key in init_args}
        super()._parse_ckpt_path()
        for key, value in kept.items():
            self.config[subcommand].model.init_args[key] = value

    def before_instantiate_classes(self) -> None:
        """Name the run after its config files: ``runs/<stem>[+<stem>...]/version_N``.

        A setting with a fragment (``-c configs/smollm2_qa.yaml -c configs/editor/mend_no_norm.yaml``)
        runs as ``smollm2_qa+mend_no_norm``, so ablations do not share one run directory.
        """
        cfg = self.config[self.subcommand]
        logger = cfg.get("trainer", {}).get("logger")
        if cfg.get("config") and logger and not isinstance(logger, bool):
            init_args = logger.get("init_args") if hasattr(logger, "get") else None
            if init_args is not None and init_args.get("name") in (None, DEFAULT_RUN_NAME, "lightning_logs"):
                init_args["name"] = "+".join(Path(str(c)).stem for c in cfg.config)

    def before_fit(self) -> None:
        """Refuse to train a test-time editor, with a message saying what to run instead."""
        if not getattr(self.model, "requires_training", True):
            name = type(self.model).__name__
            sys.stderr.write(
                f"\nmendlight: {name} is a test-time editor; it has nothing to train.\n"
                f"Evaluate it directly with `mendlight test -c <config>` or apply an edit with "
                f"`mendlight edit -c <config> --prompt ... --target ...`.\n"
            )
            raise SystemExit(2)

    def after_fit(self) -> None:
        """Write ``fit.json`` into the run: whether training finished, at which step, and its checkpoints.

        A run killed mid-way still holds the ``last.ckpt`` of its last validation; ``fit.json`` is written
        only when ``fit`` returns, so scripts (``experiments/lib.sh``) reuse a trained editor only then.
        """
        trainer = self.trainer
        if not trainer.is_global_zero or trainer.log_dir is None:
            return
        best = next((c for c in trainer.checkpoint_callbacks if c.monitor), None)
        score = getattr(best, "best_model_score", None)
        summary = {
            "finished": not trainer.interrupted,
            "global_step": trainer.global_step,
            "max_steps": trainer.max_steps,
            "reached_max_steps": trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps,
            "best_checkpoint": getattr(best, "best_model_path", None) or None,
            "best_val_loss": float(score) if score is not None else None,
            "skipped_steps": int(getattr(self.model, "skipped_steps", 0) or 0),
        }
        Path(trainer.log_dir, "fit.json").write_text(json.dumps(summary, indent=2) + "\n")


def _editor_class(class_path: str) -> type | None:
    """The editor class a config names, or None when it cannot be imported (jsonargparse reports that)."""
    module, _, name = str(class_path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


class _NoLitLoggerTip(logging.Filter):
    """Drop Lightning's "try installing litlogger" tip."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


_NO_LITLOGGER_TIP = _NoLitLoggerTip()


def _quiet_known_noise() -> None:
    """Silence warnings that are expected on this stack (STYLE.md §1.11)."""
    for pattern in (
        ".*isinstance.treespec, LeafSpec.*",
        ".*module\\(s\\) in eval mode.*",
        ".*litlogger.*",
        ".*does not have many workers.*",
        ".*The number of training batches.*",
        ".*when using `ckpt_path`, callbacks used to create the checkpoint.*",
        ".*The dirpath has changed from.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    # Lightning advertises its cloud logger on every run (an info line, not a warning)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NO_LITLOGGER_TIP)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)


def _user_error(exc: BaseException) -> BaseException | None:
    """The mendlight input error behind ``exc`` (jsonargparse wraps errors raised while instantiating)."""
    from mendlight.errors import UserInputError

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, UserInputError):
            return err
        stack += [err.__cause__, err.__context__]
    return None


def main(args: ArgsType = None) -> int | None:
    """Entry point of the ``mendlight`` console script and ``python -m mendlight``.

    ``mendlight table ...`` compares several editors on one setting (:mod:`mendlight.table_command`); every
    other subcommand is LightningCLI's. Errors in the user's input (configs, records, model references, edit
    arguments) are printed as one message and exit with status 2 instead of a traceback.
    """
    _quiet_known_noise()
    argv = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else None
    if argv and argv[0] == "table":
        from mendlight.table_command import main as table_main

        return table_main(argv[1:])
    try:
        run_cli(args)
    except Exception as exc:
        cause = _user_error(exc)
        if cause is None:
            raise
        sys.stderr.write(f"mendlight: error: {cause}\n")
        raise SystemExit(2) from None


def run_cli(args: ArgsType) -> MendLightCLI:
    """Run LightningCLI on ``args`` (a subcommand and its options) and return it (its trainer, model...)."""
    return MendLightCLI(
        Editor,
        EditDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_class=MendTrainer,
        trainer_defaults={
            "inference_mode": False,  # editors need autograd during validation and test
            "logger": {
                "class_path": "mendlight.loggers.RunLogger",
                "init_args": {"save_dir": "runs", "name": DEFAULT_RUN_NAME, "default_hp_metric": False},
            },
            # MEND's normalisation statistics are empty before the first training step, so Lightning's
            # pre-training sanity validation cannot edit; validation runs at val_check_interval instead.
            "num_sanity_val_steps": 0,
            # the progress bar only on a terminal; in a log file TextProgress prints plain lines instead
            "enable_progress_bar": sys.stderr.isatty(),
            "callbacks": [TextProgress()],
        },
        save_config_callback=TBSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        seed_everything_default=0,
        args=args,
    )


if __name__ == "__main__":
    main()
