"""The ``mendlight`` command: LightningCLI with ``fit``, ``validate``, ``test``, ``predict`` and ``edit``.

Editors and data modules are chosen by class (``--model MEND``, ``--data EditDataModule``) or by a config
file (``-c configs/smollm2_facts.yaml``). Runs land in ``runs/<config stem>/version_N/`` (under
``--trainer.default_root_dir`` when it is given) with the resolved ``config.yaml``, TensorBoard events,
checkpoints and, for ``test``, ``results.json``/``results.md``; every command ends with the line
``run: <run directory>``. ``mendlight table`` is dispatched to :mod:`mendlight.table_command`; the parser
(help, ``--version``, short errors) is :mod:`mendlight.cli_parser`, the ``edit`` subcommand's options are
:class:`mendlight.trainer.MendTrainer`'s.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import ArgsType, LightningCLI, SaveConfigCallback
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

from mendlight.callbacks import LastCheckpoint, StepEarlyStopping, TextProgress
from mendlight.checkpoints import (
    SPECIAL_PATHS,
    check_agreement,
    fetch_remote,
    read_checkpoint,
    url_scheme,
    warm_start,
)
from mendlight.cli_parser import (
    SUBCOMMANDS,
    USAGE,
    MendArgumentParser,
    edit_argv,
    package_version,
    parser_kwargs,
)
from mendlight.data.module import EditDataModule
from mendlight.editors import Editor
from mendlight.errors import ConfigError, TrainingStopped, user_error_behind
from mendlight.loggers import RunLogger, remove_unused_runs
from mendlight.packaged_configs import resolve_config_args
from mendlight.quiet import quiet_known_noise
from mendlight.run_control import SIGNAL_EXIT, FitSummary, GracefulStop
from mendlight.run_dirs import (
    TESTS_DIR,
    checkpoint_run,
    is_default_save_dir,
    print_run_line,
    run_directory,
    run_line,
    runs_root,
    use_default_root_dir,
)
from mendlight.trainer import MendTrainer

DEFAULT_RUN_NAME = "mendlight"
#: The subcommands that evaluate a checkpoint (their runs of a training run's checkpoint go inside it).
EVALUATING_SUBCOMMANDS = ("test", "validate", "predict")


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

    def setup_parser(self, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> None:
        """Lightning's parser with ``--version`` and mendlight's one-line help of each subcommand."""
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        self.parser.usage = USAGE  # set after the subcommands, whose own usage derives from the main one
        version = f"mendlight {package_version()}"
        self.parser.add_argument("--version", action="version", version=version, help=f"Print '{version}'.")
        action = getattr(self.parser, "_subcommands_action", None)
        for choice in getattr(action, "_choices_actions", []):
            choice.help = SUBCOMMANDS.get(choice.dest, choice.help)

    def add_arguments_to_parser(self, parser) -> None:
        """Link the data module's tokenizer to the editor's base model; add the checkpoint options."""
        parser.link_arguments("model.init_args.base_model", "data.init_args.tokenizer")
        parser.add_argument(
            "--allow_remote_ckpt",
            type=list[str],
            default=[],
            help="URL schemes --ckpt_path may use (e.g. '[https]'); by default only local files are read. "
            "A remote checkpoint is downloaded into the cache and loaded with weights_only=True.",
        )
        parser.add_argument(
            "--allow_other_base",
            type=bool,
            default=False,
            help="apply a checkpoint trained on another base model (edited weights of the same shapes) to "
            "the config's base model, instead of refusing it",
        )
        parser.add_argument(
            "--init_from",
            type=str | None,
            default=None,
            help="fit only: start training from a trained editor's checkpoint (its networks, learned step "
            "sizes and normalisation statistics) with a fresh optimiser, step count and data order, e.g. to "
            "continue an editor trained at 25 edits per step at 125. The config must build the same editor "
            "(class, base model, edited weights, sizes). --ckpt_path instead resumes a run exactly; given "
            "both, --ckpt_path wins (a warm-started run resumes from its own last.ckpt).",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.add_lightning_class_args(StepEarlyStopping, "early_stopping")
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
        # fast_dev_run writes nothing (no logger, no checkpoints): no fit.json either, which would otherwise
        # land in the working directory
        summary = [] if config.get("fast_dev_run") else [FitSummary()]
        return super()._instantiate_trainer(config, [*callbacks, GracefulStop(), *summary])

    def _parse_ckpt_path(self) -> None:
        """Rebuild the editor from the checkpoint's hyperparameters, except its evaluation protocol.

        Lightning replaces the ``model`` section with the hyperparameters saved in ``--ckpt_path``, which is
        right for what the editor learned (its weights must load) but silently drops test-protocol choices
        such as ``--model.init_args.sequential 100``: those (``Editor.protocol_hparams``) keep the values
        of the command line and configs.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        model = config.get("model")
        init_args = getattr(model, "init_args", None)
        allow_other_base = bool(config.get("allow_other_base"))
        self._check_ckpt_path(config, model, init_args, allow_other_base)
        kept = {}
        if init_args is not None:
            protocol = getattr(_editor_class(model.class_path), "protocol_hparams", Editor.protocol_hparams)
            kept = {key: init_args[key] for key in protocol if key in init_args}
            if allow_other_base:
                kept.update({k: init_args[k] for k in ("base_model", "dtype") if k in init_args})
        super()._parse_ckpt_path()
        for key, value in kept.items():
            self.config[subcommand].model.init_args[key] = value

    def _check_ckpt_path(self, config, model, init_args, allow_other_base: bool) -> None:
        """Refuse a remote, unreadable or mismatched ``--ckpt_path`` before anything is built or run.

        A remote checkpoint whose scheme is allowed is replaced by its downloaded copy, and every checkpoint
        is loaded with ``weights_only=True`` (:mod:`mendlight.checkpoints`).
        """
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path or str(ckpt_path) in SPECIAL_PATHS:
            return
        ckpt_path = str(ckpt_path)
        if url_scheme(ckpt_path) is not None:
            ckpt_path = str(fetch_remote(ckpt_path, list(config.get("allow_remote_ckpt") or [])))
            config["ckpt_path"] = ckpt_path
        if "weights_only" in config:
            config["weights_only"] = True
        ckpt = read_checkpoint(ckpt_path)
        base = init_args.get("base_model") if init_args is not None else None
        check_agreement(ckpt_path, ckpt, getattr(model, "class_path", None), base, allow_other_base)

    def instantiate_classes(self) -> None:
        """Build the editor, data module and trainer; pass ``--allow_other_base`` on to the editor."""
        super().instantiate_classes()
        if isinstance(self.model, Editor):
            self.model.allow_other_base = bool(self.config[self.subcommand].get("allow_other_base"))

    def before_instantiate_classes(self) -> None:
        """Name the run after its config files: ``runs/<stem>[+<stem>...]/version_N``.

        A setting with a fragment (``-c configs/smollm2_qa.yaml -c configs/editor/mend_no_norm.yaml``)
        runs as ``smollm2_qa+mend_no_norm``, so ablations do not share one run directory. The runs root is
        ``--trainer.default_root_dir`` when given. A ``test``/``validate``/``predict`` of a checkpoint from
        a training run goes inside that run, ``<run>/tests/version_K``
        (:func:`mendlight.run_dirs.checkpoint_run`), unless a run name, runs root or ``default_root_dir`` is
        given.
        """
        cfg = self.config[self.subcommand]
        if self.subcommand != "fit" and cfg.get("init_from") and not cfg.get("ckpt_path"):
            raise ConfigError(
                f"--init_from {cfg.get('init_from')!r} starts a training run (`mendlight fit`); to "
                f"{self.subcommand} a trained editor pass its checkpoint as --ckpt_path"
            )
        trainer = cfg.get("trainer", {})
        use_default_root_dir(trainer)
        logger = trainer.get("logger")
        if not logger or isinstance(logger, bool) or not hasattr(logger, "get"):
            return
        init_args = logger.get("init_args")
        if init_args is None:
            return
        name, save_dir = init_args.get("name"), init_args.get("save_dir")
        default_name = name in (None, DEFAULT_RUN_NAME, "lightning_logs")
        run = None
        if self.subcommand in EVALUATING_SUBCOMMANDS and not trainer.get("default_root_dir"):
            run = checkpoint_run(cfg.get("ckpt_path"))
        if run is not None and _run_is_where_the_logger_points(run, name, save_dir):
            init_args["save_dir"], init_args["name"] = str(run), TESTS_DIR
        elif default_name and cfg.get("config"):
            init_args["name"] = "+".join(Path(str(c)).stem for c in cfg.config)

    def after_edit(self) -> None:
        """Save the resolved ``config.yaml`` beside ``edit.json`` in the edit's run directory."""
        directory = run_directory(self.trainer, logged_only=True)
        if directory is not None and (directory / "edit.json").is_file():
            text = self._parser(self.subcommand).dump(self.config[self.subcommand], skip_none=False)
            (directory / "config.yaml").write_text(text)

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
        self._warm_start()

    def _warm_start(self) -> None:
        """``--init_from``: load a trained editor's weights before training starts (unless resuming)."""
        cfg = self.config[self.subcommand]
        init_from = cfg.get("init_from")
        if not init_from:
            return
        if cfg.get("ckpt_path"):
            resumed = cfg.get("ckpt_path")
            rank_zero_info(f"--init_from {init_from} is not loaded: --ckpt_path {resumed} resumes the run")
            return
        class_path = getattr(cfg.get("model"), "class_path", None)
        step = warm_start(self.model, str(init_from), class_path)
        self.model.initialised_from = {"checkpoint": str(init_from), "step": step}
        rank_zero_info(f"editor weights from {init_from} (step {step} of its run); this run counts from 0")


def _run_is_where_the_logger_points(run: Path, name: str | None, save_dir: str | None) -> bool:
    """Whether a test of ``run``'s checkpoint may go inside ``run``: the logger names no other place.

    True when the logger's run name and runs root are mendlight's defaults, or are the training run's own
    (a test with the run's saved ``config.yaml``); False when the user chose another name or root.
    """
    default_name = name in (None, DEFAULT_RUN_NAME, "lightning_logs")
    if not (default_name or name == run.parent.name):
        return False
    return is_default_save_dir(save_dir) or Path(str(save_dir)).expanduser().resolve() == run.parent.parent


def _editor_class(class_path: str) -> type | None:
    """The editor class a config names, or None when it cannot be imported (jsonargparse reports that)."""
    module, _, name = str(class_path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def main(args: ArgsType = None) -> int | None:
    """Entry point of the ``mendlight`` console script and ``python -m mendlight``.

    ``mendlight table ...`` compares several editors on one setting (:mod:`mendlight.table_command`); every
    other subcommand is LightningCLI's. Every command ends with ``run: <run directory>``. Errors in the
    user's input (configs, records, model references, edit arguments) are printed as one message and exit
    with status 2 instead of a traceback.
    """
    quiet_known_noise()
    argv = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else None
    if argv is not None and argv[:1] == ["--version"]:
        print(f"mendlight {package_version()}")
        return 0
    if argv is not None and resolve_config_args(argv) != argv:  # -c smollm2_qa: a packaged config
        argv = resolve_config_args(argv)
        if args is None:  # LightningCLI reads sys.argv itself
            sys.argv[1:] = argv
        else:
            args = argv
    if argv and argv[0] == "download-embedded":
        from mendlight.embedded import main as embedded_main

        return embedded_main(argv[1:])
    if argv and argv[0] == "table":
        from mendlight.table_command import main as table_main

        claimed = len(RunLogger.claimed)
        status = table_main(argv[1:], run_cli)
        if status == 0:
            print(run_line(RunLogger.claimed[claimed:]), flush=True)
        return status
    if argv is not None and "edit" in argv:
        if args is None:  # LightningCLI reads sys.argv itself (and warns if given both)
            sys.argv[1:] = edit_argv(argv)
        else:
            args = edit_argv(argv)
    claimed_before = set(RunLogger.claimed)
    try:
        cli = run_cli(args)
    except TrainingStopped as exc:
        sys.stderr.write(f"mendlight: {exc}\n")
        new = [d for d in RunLogger.claimed if d not in claimed_before]
        if new:
            sys.stderr.write(run_line(new[-1:]) + "\n")
        raise SystemExit(exc.exit_code) from None
    except SIGTERMException:  # outside training (test, validate, predict): Lightning stopped the loop
        sys.stderr.write("mendlight: stopped by SIGTERM before the end; nothing more was written\n")
        raise SystemExit(SIGNAL_EXIT["SIGTERM"]) from None
    except Exception as exc:
        cause = user_error_behind(exc)
        if cause is None:
            raise
        remove_unused_runs(set(RunLogger.claimed) - claimed_before)
        sys.stderr.write(f"mendlight: error: {cause}\n")
        raise SystemExit(2) from None
    if cli.trainer.is_global_zero:
        edit = cli.subcommand == "edit"
        as_json = edit and bool(cli.config[cli.subcommand].get("json"))  # stdout holds the JSON alone
        print_run_line(cli.trainer, logged_only=edit, stream=sys.stderr if as_json else sys.stdout)
    return None


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
                "init_args": {"save_dir": runs_root(), "name": DEFAULT_RUN_NAME, "default_hp_metric": False},
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
        parser_class=MendArgumentParser,
        parser_kwargs=parser_kwargs(),
        auto_configure_optimizers=False,
        seed_everything_default=0,
        args=args,
    )


if __name__ == "__main__":
    main()
