"""The Lightning callbacks: plain-text progress lines."""

from __future__ import annotations

import io
import re

import pytest
import pytorch_lightning as pl
from pytorch_lightning.demos.boring_classes import BoringModel

from mendlight.callbacks import TextProgress, _duration


def _trainer(progress: TextProgress, tmp_path, bar: bool, **overrides) -> pl.Trainer:
    options = {
        "max_steps": 6,
        "limit_val_batches": 2,
        "limit_test_batches": 3,
        "val_check_interval": 3,
        "num_sanity_val_steps": 0,
        **overrides,
    }
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=bar,
        callbacks=[progress],
        **options,
    )


def test_prints_training_validation_and_test_lines_without_a_bar(tmp_path):
    out = io.StringIO()
    trainer = _trainer(TextProgress(every_s=0, stream=out), tmp_path, bar=False)
    model = BoringModel()
    trainer.fit(model)
    trainer.test(model, verbose=False)
    lines = out.getvalue().splitlines()
    fit = [line for line in lines if line.startswith("fit: ")]
    assert [int(re.match(r"fit: step (\d+)/6", line).group(1)) for line in fit] == [1, 2, 3, 4, 5, 6]
    assert all(re.search(r"loss -?\d+\.\d{4} · \d+\.\d\d s/step · \d+ s left$", line) for line in fit)
    validations = [line for line in lines if line.startswith("validation at step")]
    assert [line.split(":")[0] for line in validations] == ["validation at step 3", "validation at step 6"]
    tests = [line for line in lines if line.startswith("test: batch")]
    assert [line.split(" · ")[0] for line in tests] == [f"test: batch {i}/3" for i in (1, 2, 3)]
    assert lines[-1].startswith("test: done in ")


def test_silent_while_the_progress_bar_shows(tmp_path):
    out = io.StringIO()
    _trainer(TextProgress(every_s=0, stream=out), tmp_path, bar=True).fit(BoringModel())
    assert out.getvalue() == ""


def test_lines_are_rate_limited(tmp_path):
    out = io.StringIO()
    _trainer(TextProgress(every_s=3600, stream=out), tmp_path, bar=False).fit(BoringModel())
    assert not [line for line in out.getvalue().splitlines() if line.startswith("fit: ")]


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4 s"), (185, "3 min 5 s"), (3720, "1 h 02 min")])
def test_duration(seconds, text):
    assert _duration(seconds) == text


class _PlateauModel(BoringModel):
    """Logs ``val/metric`` = max(3, 6 - step / 5): it improves until step 15, then stays at 3."""

    def on_validation_epoch_end(self) -> None:
        self.log("val/metric", max(3.0, 6.0 - self.global_step / 5))


@pytest.mark.parametrize(("every", "best", "stop"), [(5, 15, 25), (2, 16, 26)])
def test_early_stopping_counts_steps_not_validations(tmp_path, every, best, stop):
    from mendlight.callbacks import StepEarlyStopping
    from mendlight.run_control import end_reason

    early = StepEarlyStopping(monitor="val/metric", mode="min", patience_steps=10)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=200,
        limit_val_batches=1,
        val_check_interval=every,
        check_val_every_n_epoch=None,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=[early],
    )
    trainer.fit(_PlateauModel())
    assert early.best_step == best
    assert trainer.global_step == stop  # the first validation at least 10 steps after the best one
    assert end_reason(trainer) == "early_stopping"
    assert early.state_dict()["best_step"] == best


def test_early_stopping_without_patience_never_stops(tmp_path):
    from mendlight.callbacks import StepEarlyStopping
    from mendlight.run_control import end_reason

    early = StepEarlyStopping(monitor="val/metric")
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=40,
        limit_val_batches=1,
        val_check_interval=5,
        check_val_every_n_epoch=None,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=[early],
    )
    trainer.fit(_PlateauModel())
    assert trainer.global_step == 40 and end_reason(trainer) == "max_steps"


def test_time_left_is_the_time_cap_when_it_comes_first(tmp_path):
    out = io.StringIO()
    trainer = _trainer(
        TextProgress(every_s=0, stream=out),
        tmp_path,
        bar=False,
        max_steps=10**9,  # the estimate from steps: years; the time cap ends the run first
        max_time={"hours": 2},
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=0,
        val_check_interval=None,
    )
    trainer.fit(BoringModel())
    fit = [line for line in out.getvalue().splitlines() if line.startswith("fit: ")]
    assert fit and all(re.search(r"· (1 h 5\d|2 h 00) min left \(time cap\)$", line) for line in fit), fit
