"""Where a ``mendlight`` command's run goes, and the ``run: ...`` line every command ends with.

A run lands in ``<root>/<name>/version_N/`` (:class:`~mendlight.loggers.RunLogger`): the root is
``--trainer.default_root_dir`` when given (:func:`use_default_root_dir`), else ``$MENDLIGHT_RUNS``, else
``runs`` in the working directory (:func:`runs_root`). A ``test``, ``validate`` or ``predict`` of a
checkpoint that lies in a training run (``<run>/checkpoints/*.ckpt``) goes inside that run instead, as
``<run>/tests/version_K/`` (:func:`checkpoint_run`): its TensorBoard scalars, logged at the checkpoint's
training step, sit beside the training curves they belong to. With the logger turned off
(``--trainer.logger false``) Lightning writes checkpoints under ``default_root_dir`` itself, and with
``--trainer.fast_dev_run`` nothing is written at all (:func:`run_directory` is then None).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

#: The runs root when neither ``--trainer.default_root_dir`` nor ``$MENDLIGHT_RUNS`` is set.
DEFAULT_RUNS_ROOT = "runs"
#: The environment variable naming the runs root.
RUNS_ENV = "MENDLIGHT_RUNS"
#: The directory inside a training run that the evaluations of its checkpoints go into.
TESTS_DIR = "tests"
#: Files that mark a directory as a training run (its fit summary, or the config it saved).
RUN_MARKERS = ("fit.json", "config.yaml")


def runs_root() -> str:
    """The default runs root: ``$MENDLIGHT_RUNS`` if set (``~`` expanded), else ``runs``."""
    env = os.environ.get(RUNS_ENV)
    return str(Path(env).expanduser()) if env else DEFAULT_RUNS_ROOT


def checkpoint_run(ckpt_path: str | os.PathLike[str] | None) -> Path | None:
    """The training run a local checkpoint belongs to, or None.

    A checkpoint belongs to a run when it is ``<run>/checkpoints/<file>`` and ``<run>`` holds the run's
    ``fit.json`` or ``config.yaml`` (:data:`RUN_MARKERS`). Remote URLs, Lightning's special names (``best``,
    ``last``...) and checkpoints kept anywhere else belong to no run.
    """
    if ckpt_path is None or "://" in str(ckpt_path):
        return None
    path = Path(ckpt_path).expanduser()
    if path.parent.name != "checkpoints" or not path.is_file():
        return None
    run = path.parent.parent
    return run.resolve() if any((run / marker).is_file() for marker in RUN_MARKERS) else None


def is_default_save_dir(save_dir: str | None) -> bool:
    """Whether a logger's ``save_dir`` is mendlight's default runs root (not one the user chose)."""
    return save_dir in (None, DEFAULT_RUNS_ROOT, runs_root())


def use_default_root_dir(trainer_config: Any) -> None:
    """Put the run under ``--trainer.default_root_dir`` when one is given.

    The logger's ``save_dir`` is mendlight's ``runs`` by default, which would otherwise win over the
    trainer's root; a ``save_dir`` set to anything else (``--trainer.logger.init_args.save_dir``) is kept.
    """
    if not hasattr(trainer_config, "get"):
        return
    root = trainer_config.get("default_root_dir")
    logger = trainer_config.get("logger")
    if root is None or not logger or isinstance(logger, bool) or not hasattr(logger, "get"):
        return
    init_args = logger.get("init_args")
    if init_args is not None and is_default_save_dir(init_args.get("save_dir")):
        init_args["save_dir"] = str(root)


def run_directory(trainer: Any, logged_only: bool = False) -> Path | None:
    """The directory a trainer's run writes into, or None when it writes none.

    Args:
        trainer: a Lightning trainer.
        logged_only: None unless the run has a logger's version directory (``edit`` writes its report
            only there, never into a bare ``default_root_dir`` such as the working directory).

    Returns:
        ``runs/<name>/version_N`` (the logger's directory; asking claims it), ``default_root_dir`` when the
        logger is off, None under ``fast_dev_run`` (Lightning writes nothing then). Not a collective call:
        it may be asked on process 0 alone.

    """
    if getattr(trainer, "fast_dev_run", False):
        return None
    if not trainer.loggers:
        return None if logged_only else Path(trainer.default_root_dir)
    # the logger's own directory, as ``trainer.log_dir`` finds it but without its broadcast (a collective
    # call, which would stall a multi-process run asked on one process only)
    logger = trainer.loggers[0]
    if isinstance(logger, TensorBoardLogger | CSVLogger):
        log_dir = logger.log_dir
    else:
        log_dir = getattr(logger, "save_dir", None)
    return Path(log_dir) if log_dir else None


def shown_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def run_line(directories: Iterable[Path | None], fast_dev_run: bool = False) -> str:
    """``run: runs/<name>/version_N`` (several runs comma-separated), or why there is none."""
    shown = [shown_path(d) for d in directories if d is not None]
    if shown:
        return "run: " + ", ".join(shown)
    if fast_dev_run:
        return "run: none (--trainer.fast_dev_run writes no run directory)"
    return "run: none (no run directory was written)"


def print_run_line(trainer: Any, logged_only: bool = False, stream: TextIO | None = None) -> None:
    """Print the :func:`run_line` of a trainer's run (call it on process 0 only)."""
    directory = run_directory(trainer, logged_only=logged_only)
    line = run_line([directory], fast_dev_run=bool(getattr(trainer, "fast_dev_run", False)))
    print(line, file=stream or sys.stdout, flush=True)
