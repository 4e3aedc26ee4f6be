"""How a training run ends, and the record of it: clean stops on SIGTERM/SIGINT and ``fit.json``.

* :class:`GracefulStop` turns SIGTERM (sent by ``timeout``, job schedulers, ``docker stop``) and the first
  Ctrl-C into a clean stop at the next step boundary: ``last.ckpt`` is written at the current step and
  training ends with :class:`~mendlight.errors.TrainingStopped` (exit status 143 or 130). A second Ctrl-C
  aborts at once. In a multi-process run the processes agree on the step to stop at, so a signal that reached
  one of them stops all.
* :class:`FitSummary` keeps ``fit.json`` in the run directory: ``"status": "running"`` from the start (so a
  run killed without warning is recognisable), then ``finished`` / ``stopped`` / ``failed`` with the reason,
  the step reached and the checkpoints. The file is strict JSON (non-finite numbers are written as null).
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, EarlyStopping, Timer
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

from mendlight.callbacks import LastCheckpoint
from mendlight.errors import TrainingStopped

#: Exit statuses of a run stopped by a signal: 128 + the signal number, as a shell reports it.
SIGNAL_EXIT = {"SIGTERM": 128 + signal.SIGTERM, "SIGINT": 128 + signal.SIGINT}
FIT_JSON = "fit.json"


def _last_checkpoint(trainer: pl.Trainer) -> LastCheckpoint | None:
    return next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)


class GracefulStop(Callback):
    """Stop training cleanly on SIGTERM or the first SIGINT, with ``last.ckpt`` at the step reached.

    The signal only sets a flag. At the end of the current training step the run writes ``last.ckpt`` and
    raises :class:`~mendlight.errors.TrainingStopped`; if a validation is due after that step, it runs first
    and the run stops right after it (its ``last.ckpt``), so no validation is lost. Either checkpoint resumes
    exactly (``fit --ckpt_path .../last.ckpt``). Outside training (testing, validating) Lightning's own
    handling applies.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    # ------------------------------------------------------------------ signal handlers
    def _handler(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without a checkpoint
        if self.requested is None:
            self.requested = name
            print(
                f"\nmendlight: {name} received: stopping after the current training step "
                "(press Ctrl-C again to abort at once)",
                flush=True,
            )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Install the handlers (after Lightning's own, which it restores when training ends)."""
        self.requested = None
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handler)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Put back the handlers found at the start."""
        self._restore()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Put back the handlers found at the start."""
        self._restore()

    def _restore(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    # ------------------------------------------------------------------ stopping
    def _agreed(self, trainer: pl.Trainer) -> str | None:
        """The stop request, if any process received one (every process calls this at the same point)."""
        if trainer.world_size == 1:
            return self.requested
        anyone = trainer.strategy.reduce_boolean_decision(self.requested is not None, all=False)
        return (self.requested or "SIGTERM") if anyone else None

    def _stop(self, reason: str, step: int, saved: bool) -> None:
        where = "last.ckpt holds it" if saved else "checkpointing is off: nothing was saved"
        raise TrainingStopped(
            f"training stopped by {reason} at step {step} ({where}); resume with "
            "`mendlight fit -c <the run's config.yaml> --ckpt_path <run>/checkpoints/last.ckpt`",
            reason=reason,
            exit_code=SIGNAL_EXIT.get(reason, 1),
        )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        """Stop here, with ``last.ckpt`` at this step, unless a validation follows this step."""
        reason = self._agreed(trainer)
        if reason is None or _validation_follows(trainer):
            return
        last = _last_checkpoint(trainer)
        if last is not None:
            last.save_now(trainer)
        self._stop(reason, trainer.global_step, saved=last is not None)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        """Stop before the next step when the validation just run saved ``last.ckpt`` at this step."""
        reason = self._agreed(trainer)
        last = _last_checkpoint(trainer)
        if reason is not None and (last is None or last.saved_step == trainer.global_step):
            self._stop(reason, trainer.global_step, saved=last is not None)


def _validation_follows(trainer: pl.Trainer) -> bool:
    """Whether Lightning validates right after the training step that just ended (its own decision)."""
    loop = trainer.fit_loop
    try:
        return bool(loop.epoch_loop._should_check_val_fx(loop._data_fetcher))
    except AttributeError:  # another Lightning version: stop at this step, the validation runs on resume
        return False


# ---------------------------------------------------------------------------------------------- fit.json
def _finite(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (fit.json is strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def end_reason(trainer: pl.Trainer) -> str:
    """What ended a ``fit`` that returned normally: max_steps, max_epochs, max_time or early_stopping."""
    if trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step:
        return "max_steps"
    for callback in trainer.callbacks:
        stopped = getattr(callback, "stopping_reason", EarlyStoppingReason.NOT_STOPPED)
        if isinstance(callback, EarlyStopping) and stopped != EarlyStoppingReason.NOT_STOPPED:
            return "early_stopping"
        if isinstance(callback, Timer) and (callback.time_remaining() or 1.0) <= 0:
            return "max_time"
    if trainer.max_epochs is not None and 0 < trainer.max_epochs <= trainer.current_epoch:
        return "max_epochs"
    return "should_stop" if trainer.should_stop else "end_of_data"


class FitSummary(Callback):
    """Write ``fit.json``: ``running`` while training, then how it ended (rank 0; strict JSON).

    Fields: ``status`` (``running``, ``finished``, ``stopped``, ``failed``), ``finished`` (true only for a run
    that reached its end: ``max_steps``, ``max_epochs``, ``max_time`` or early stopping), ``reason``,
    ``global_step``, ``max_steps``, ``reached_max_steps``, ``best_checkpoint``, ``monitor`` (the metric that
    chose it) and ``best_score`` (its value there), ``best_val_loss`` (the same when the monitor is
    ``val/loss``, else null), ``last_checkpoint``, ``skipped_steps``, ``resumed_from``, ``initialised_from``
    (``fit --init_from``'s checkpoint and its step, else null), ``started`` and ``updated`` (ISO times),
    ``train_time_s`` (since training started in this process), ``validation_time_s`` and
    ``validation_share`` (the part of it spent validating), ``pid`` and ``host``; ``error`` holds the message
    of a failure.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self._started = ""
        self._resumed_from: str | None = None
        self._train_start: float | None = None
        self._val_start: float | None = None
        self._val_seconds = 0.0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Fix the file's path (every process reads the run directory together) and mark the run running."""
        if stage != "fit":
            return
        directory = trainer.log_dir  # a collective call in a multi-process run: every process makes it
        self.path = Path(directory or trainer.default_root_dir) / FIT_JSON if trainer.is_global_zero else None
        self._started = _now()
        self._write(trainer, pl_module, status="running", reason=None)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Add the checkpoint a resumed run started from (known once it is restored) and its step."""
        self._resumed_from = str(trainer.ckpt_path) if trainer.ckpt_path else None
        self._train_start, self._val_seconds = time.monotonic(), 0.0
        self._write(trainer, pl_module, status="running", reason=None)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start timing a validation inside training."""
        self._val_start = time.monotonic() if self._train_start is not None else None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Add the validation's duration to the time spent validating."""
        if self._val_start is not None:
            self._val_seconds += time.monotonic() - self._val_start
            self._val_start = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record a run that reached its end."""
        self._write(trainer, pl_module, status="finished", reason=end_reason(trainer))

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Record a run stopped by a signal, by divergence, or by an error."""
        if isinstance(exception, TrainingStopped):
            self._write(trainer, pl_module, status="stopped", reason=exception.reason, error=str(exception))
        elif isinstance(exception, KeyboardInterrupt):
            self._write(trainer, pl_module, status="stopped", reason="SIGINT", error="aborted by Ctrl-C")
        else:
            self._write(
                trainer, pl_module, status="failed", reason=type(exception).__name__, error=str(exception)
            )

    def _write(
        self, trainer: pl.Trainer, pl_module, status: str, reason: str | None, error: str = ""
    ) -> None:
        if self.path is None:
            return
        best = next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), None)
        score = getattr(best, "best_model_score", None)
        last = _last_checkpoint(trainer)
        summary = {
            "status": status,
            "finished": status == "finished",
            "reason": reason,
            "global_step": trainer.global_step,
            "max_steps": trainer.max_steps,
            "reached_max_steps": trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps,
            "best_checkpoint": getattr(best, "best_model_path", None) or None,
            "monitor": getattr(best, "monitor", None),
            "best_score": float(score) if score is not None else None,
            "best_val_loss": float(score) if score is not None and best.monitor == "val/loss" else None,
            "last_checkpoint": (last.last_model_path or None) if last is not None else None,
            "skipped_steps": int(getattr(pl_module, "skipped_steps", 0) or 0),
            **_fit_times(self._train_start, self._val_seconds),
            "resumed_from": self._resumed_from,
            "initialised_from": getattr(pl_module, "initialised_from", None),
            "started": self._started,
            "updated": _now(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        if error:
            summary["error"] = error
        write_json_atomic(self.path, _finite(summary))


def _fit_times(start: float | None, validation: float) -> dict[str, float | None]:
    """Seconds since training started (this process), of them validating, and the validation share."""
    if start is None:
        return {"train_time_s": None, "validation_time_s": None, "validation_share": None}
    total = time.monotonic() - start
    return {
        "train_time_s": round(total, 3),
        "validation_time_s": round(validation, 3),
        "validation_share": round(validation / total, 4) if total > 0 else None,
    }


def write_json_atomic(path: Path, value: Any) -> None:
    """Write strict JSON (``NaN``/``Infinity`` refused) to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
