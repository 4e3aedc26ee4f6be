"""Lightning callbacks of mendlight."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """Keep ``checkpoints/last.ckpt`` equal to the latest training state.

    Lightning 2.6 writes ``last.ckpt`` only when a top-k checkpoint is written at the same step, so with a
    monitored "best" checkpoint it can silently lag behind. This callback rewrites it after every validation
    and when training ends (``max_steps``, ``max_time`` or an interruption), which is what ``fit --ckpt_path``
    resumes from.
    """

    def __init__(self) -> None:
        super().__init__(monitor=None, save_top_k=0, save_last=True)

    def _save_latest(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.global_step == 0:
            return
        if self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write ``last.ckpt`` after each validation."""
        self._save_latest(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write ``last.ckpt`` when training stops for any reason."""
        self._save_latest(trainer)

    def on_train_batch_end(self, *args, **kwargs) -> None:
        """No step-based saving."""

    def on_train_epoch_end(self, *args, **kwargs) -> None:
        """No epoch-based saving."""
