"""The run logger of mendlight: TensorBoard, with each new run's version directory claimed atomically."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only


class RunLogger(TensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` for ``runs/<name>/version_N``, safe for runs started at once.

    Lightning picks a new run's version by listing the existing ``version_*`` directories and creates the
    directory only later, so two runs started together in the same ``runs/<name>/`` (two ``mendlight table``
    scripts, a sweep) can pick the same N and overwrite each other's ``config.yaml`` and ``results.json``.
    This logger claims ``version_N`` with an atomic ``mkdir`` and moves on to N+1 if another run got there
    first. An explicit ``version``, a remote ``save_dir`` (``s3://...``) and processes other than rank 0
    behave as in Lightning. Every directory claimed is listed in :attr:`claimed`, so that a command rejected
    for bad input removes the run it had started (:func:`remove_unused_runs`).

    Args:
        save_dir: the runs root (``runs``).
        name: the run name: ``runs/<name>/version_N``.
        version: a fixed version (number or directory name) instead of the next free one.
        **kwargs: the other ``TensorBoardLogger`` arguments (``default_hp_metric``, ``sub_dir``...).

    """

    #: run directories this process claimed, in order
    claimed: ClassVar[list[Path]] = []

    def __init__(
        self,
        save_dir: str = "runs",
        name: str | None = "mendlight",
        version: int | str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(save_dir=save_dir, name=name, version=version, **kwargs)

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if rank_zero_only.rank != 0 or "://" in str(self.root_dir):
            return version
        root = Path(self.root_dir)
        root.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                (root / f"version_{version}").mkdir()
            except FileExistsError:
                version += 1
            else:
                RunLogger.claimed.append((root / f"version_{version}").resolve())
                return version


#: Files that make a run directory worth keeping: checkpoints and results.
KEPT_RESULTS = ("*.ckpt", "results.json", "predictions.jsonl")


def remove_unused_runs(directories: set[Path]) -> list[Path]:
    """Remove run directories that hold no checkpoint and no results (a command rejected for bad input).

    Only directories this process claimed should be passed; one holding a checkpoint, ``results.json`` or
    ``predictions.jsonl`` is kept. Returns the directories removed.
    """
    removed = []
    for directory in sorted(directories):
        if not directory.is_dir() or any(any(directory.rglob(p)) for p in KEPT_RESULTS):
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
        for parent in (directory.parent, directory.parent.parent):  # runs/<name>/ and runs/, if now empty
            try:
                parent.rmdir()
            except OSError:
                break
    return removed
