"""Lightning callbacks of mendlight."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, Timer


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
        if self.saved_step == trainer.global_step:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @property
    def saved_step(self) -> int | None:
        """The global step ``last.ckpt`` was last written at by this run (None before the first write)."""
        return self._last_global_step_saved if self._last_checkpoint_saved else None

    def save_now(self, trainer: pl.Trainer) -> None:
        """Write ``last.ckpt`` at the current step (a clean stop on a signal)."""
        self._save_latest(trainer)

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


class StepEarlyStopping(EarlyStopping):
    """Stop training when a validation metric has not improved for ``patience_steps`` training steps.

    The paper's early stopping (App. C) counts steps, not validations: with validation every ``v`` steps,
    a patience of ``p`` steps is ``p / v`` validations without improvement. ``patience_steps`` None (the
    default) never stops. The state (best value and its step) is saved in checkpoints, so a resumed run keeps
    counting; ``fit.json`` says ``"reason": "early_stopping"`` when it stopped the run.

    Args:
        monitor: the validation metric (``val/loss``, ``val/es``...).
        mode: ``min`` or ``max``: whether a lower or a higher value is better.
        patience_steps: training steps without an improvement of the metric after which training stops.
        min_delta: the least change that counts as an improvement.

    """

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: str = "min",
        patience_steps: int | None = None,
        min_delta: float = 0.0,
    ) -> None:
        if patience_steps is not None and patience_steps < 1:
            from mendlight.errors import ConfigError

            raise ConfigError(f"early_stopping.patience_steps must be at least 1, got {patience_steps}")
        super().__init__(
            monitor=monitor, mode=mode, patience=2**62, min_delta=min_delta, strict=False, verbose=True
        )
        self.patience_steps = patience_steps
        self.best_step = 0
        self._step = 0

    def _run_early_stopping_check(self, trainer: pl.Trainer) -> None:
        if self.patience_steps is None:
            return
        self._step = trainer.global_step
        super()._run_early_stopping_check(trainer)

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        should_stop, reason = super()._evaluate_stopping_criteria(current)
        if should_stop:
            return should_stop, reason
        if self.wait_count == 0:
            self.best_step = self._step
        elif self._step - self.best_step >= self.patience_steps:
            from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

            self.stopping_reason = EarlyStoppingReason.PATIENCE_EXHAUSTED
            return True, (
                f"{self.monitor} did not improve for {self._step - self.best_step} steps (patience "
                f"{self.patience_steps}); best {float(self.best_score):.4f} at step {self.best_step}"
            )
        return False, reason

    def state_dict(self) -> dict:
        """Lightning's state plus the step of the best value."""
        return {**super().state_dict(), "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the state (a resumed run keeps counting steps from the best one)."""
        super().load_state_dict(state_dict)
        self.best_step = int(state_dict.get("best_step", 0))
        self.patience = 2**62


def _time_left(trainer: pl.Trainer) -> float | None:
    """Seconds left before ``max_time`` stops training (Lightning's Timer callback), or None without one."""
    for callback in trainer.callbacks:
        if isinstance(callback, Timer):
            left = callback.time_remaining("train")
            return max(float(left), 0.0) if left is not None else None
    return None


class TextProgress(Callback):
    """Plain progress lines for logs: what Lightning's progress bar shows, when that bar is off.

    ``mendlight`` shows the bar only when its output is a terminal (``--trainer.enable_progress_bar`` sets it
    either way), since its carriage returns make log files unreadable; without the bar this callback prints
    one line at most every ``every_s`` seconds while training (step, loss, seconds per step, time left) or
    testing (batches done, time left), and one line per validation with its metrics. With the bar on it
    prints nothing.

    Args:
        every_s: seconds between two progress lines.
        stream: where to print (default: standard output).

    """

    def __init__(self, every_s: float = 60.0, stream: TextIO | None = None) -> None:
        self.every_s = every_s
        self.stream = stream
        self._start = self._last = 0.0
        self._first_step = 0

    def _active(self, trainer: pl.Trainer) -> bool:
        return trainer.progress_bar_callback is None and trainer.is_global_zero

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True

    def _begin(self) -> None:
        self._start = self._last = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the training clock."""
        self._begin()
        self._first_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx
    ) -> None:
        """Print the step, its loss, the speed and the time left, when a line is due."""
        if not self._active(trainer) or not self._due():
            return
        step, total = trainer.global_step, trainer.max_steps
        done = max(step - self._first_step, 1)
        per_step = (time.monotonic() - self._start) / done
        parts = [f"fit: step {step}" + (f"/{total}" if total and total > 0 else "")]
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            parts.append(f"loss {loss.item():.4f}")
        parts.append(f"{per_step:.2f} s/step")
        left = per_step * max(total - step, 0) if total and total > 0 else None
        capped = _time_left(trainer)  # max_time ends the run first when it comes sooner
        if capped is not None and (left is None or capped < left):
            parts.append(f"{_duration(capped)} left (time cap)")
        elif left is not None:
            parts.append(f"{_duration(left)} left")
        self._print(" · ".join(parts))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Print the validation metrics after each validation in training."""
        if not self._active(trainer) or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        shown = " · ".join(f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()))
        self._print(f"validation at step {trainer.global_step}: {shown}")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the test clock."""
        self._begin()

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        """Print the batches tested and the time left, when a line is due."""
        if not self._active(trainer) or not self._due():
            return
        total = trainer.num_test_batches[dataloader_idx] if trainer.num_test_batches else None
        elapsed = time.monotonic() - self._start
        line = f"test: batch {batch_idx + 1}" + (f"/{total}" if isinstance(total, int) else "")
        line += f" · {_duration(elapsed)} so far"
        if isinstance(total, int) and total > 0:
            line += f" · {_duration(elapsed / (batch_idx + 1) * (total - batch_idx - 1))} left"
        self._print(line)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Print how long the test took."""
        if self._active(trainer):
            self._print(f"test: done in {_duration(time.monotonic() - self._start)}")


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s`` or ``1 h 02 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
