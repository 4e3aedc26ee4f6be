"""How a ``fit`` ends and what it leaves: divergence stops, strict ``fit.json``, bf16 runs, no empty runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mendlight.editors import MEND
from tests.cli.conftest import one_error_line

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"


def _strict_json(path: Path) -> dict:
    """Parse as strict JSON: ``NaN``/``Infinity`` (which Python writes by default) are refused."""

    def refuse(token: str):
        raise AssertionError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_diverging_run_stops_after_consecutive_nonfinite_steps(tmp_path, monkeypatch, run_mendlight):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "-c", str(TINY), "--trainer.max_steps", "30", "--trainer.val_check_interval", "10"]
    args += ["--model.init_args.optimizer.init_args.lr", "1e10"]  # every loss from the second step is NaN
    args += ["--model.init_args.max_nonfinite_steps", "4"]
    code, _, err = run_mendlight(args)
    assert code == 1
    assert "Traceback" not in err
    assert "4 consecutive steps had a non-finite loss or non-finite gradients" in err
    assert "max_nonfinite_steps" in err
    summary = _strict_json(tmp_path / "runs" / "tiny_debug" / "version_0" / "fit.json")
    assert summary["status"] == "stopped" and summary["finished"] is False
    assert summary["reason"] == "non-finite"
    assert summary["skipped_steps"] >= 4 and summary["global_step"] < 30


def test_non_finite_numbers_are_written_as_null(tmp_path):
    from mendlight.run_control import _finite, write_json_atomic

    path = tmp_path / "fit.json"
    write_json_atomic(
        path, _finite({"best_val_loss": float("inf"), "x": [float("nan"), 1.5], "y": {"z": -1e400}})
    )
    assert _strict_json(path) == {"best_val_loss": None, "x": [None, 1.5], "y": {"z": None}}
    with pytest.raises(ValueError):
        write_json_atomic(path, {"loss": float("nan")})  # never written as NaN


def test_fit_json_says_running_while_training(tmp_path, monkeypatch, run_mendlight):
    """A run killed without warning leaves ``"status": "running"``; a finished one says why it ended."""
    monkeypatch.chdir(tmp_path)
    seen: list[dict] = []
    training_step = MEND.training_step

    def spy(self, batch, batch_idx):
        if not seen:
            seen.append(_strict_json(Path(self.trainer.log_dir) / "fit.json"))
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(MEND, "training_step", spy)
    code, _, err = run_mendlight(["fit", "-c", str(TINY), "--trainer.max_steps", "3"])
    assert code == 0, err[-3000:]
    assert seen[0]["status"] == "running" and seen[0]["finished"] is False and seen[0]["global_step"] == 0
    summary = _strict_json(tmp_path / "runs" / "tiny_debug" / "version_0" / "fit.json")
    assert summary["status"] == "finished" and summary["reason"] == "max_steps" and summary["finished"]
    assert summary["last_checkpoint"].endswith("last.ckpt") and summary["resumed_from"] is None


def test_bf16_mixed_fits_and_tests_with_a_float32_editor(tmp_path, monkeypatch, run_mendlight):
    monkeypatch.chdir(tmp_path)
    autocast: list[tuple[bool, torch.dtype]] = []
    training_step = MEND.training_step

    def spy(self, batch, batch_idx):
        autocast.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(MEND, "training_step", spy)
    bf16 = ["--trainer.precision", "bf16-mixed"]
    code, _, err = run_mendlight(["fit", "-c", str(TINY), *bf16])
    assert code == 0, err[-3000:]
    assert autocast and all(on and dtype == torch.bfloat16 for on, dtype in autocast)  # really bf16
    version = tmp_path / "runs" / "tiny_debug" / "version_0"
    ckpt = torch.load(version / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    floats = {k: v for k, v in ckpt["state_dict"].items() if v.is_floating_point()}
    assert floats and all(v.dtype == torch.float32 for v in floats.values())
    assert all(torch.isfinite(v).all() for v in floats.values())
    counts = [int(v) for k, v in ckpt["state_dict"].items() if k.endswith(".count")]
    assert counts and all(c > 0 for c in counts) and ckpt["state_dict"]["alpha"].dtype == torch.float32
    code, out, err = run_mendlight(
        [
            "test",
            "-c",
            str(version / "config.yaml"),
            "--ckpt_path",
            str(version / "checkpoints" / "last.ckpt"),
        ]
    )
    assert code == 0, err[-3000:]
    results = json.loads((version / "tests" / "version_0" / "results.json").read_text())
    assert results["subsets"]["all"]["n_records"] == 4 and "# Editing results: MEND" in out


def _records_dir(tmp_path: Path, target: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val", "test"):
        rows = [{"prompt": f"The capital of country {i} is", "target_new": "Paris"} for i in range(4)]
        if split == "train":
            rows[2]["target_new"] = target
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_a_record_too_long_is_rejected_before_training_and_leaves_no_run(
    tmp_path, monkeypatch, run_mendlight
):
    monkeypatch.chdir(tmp_path)
    data = _records_dir(tmp_path, "x" * 200)
    code, _, err = run_mendlight(["fit", "-c", str(TINY), "--data.init_args.dataset", str(data)])
    assert code == 2
    line = one_error_line(err)
    assert "train.jsonl:3" in line and "target_new" in line and "max_length=128" in line
    assert "--data.init_args.max_length" in line
    assert not list(tmp_path.glob("runs/*/version_*"))  # the run directory it had claimed is removed


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data.init_args.n_edits", "0"], ["EditDataModule", "n_edits", "0"]),
        (["--model.init_args.sequential", "-1"], ["MEND", "sequential", "-1"]),
        (["--model.init_args.max_nonfinite_steps", "0"], ["MEND", "max_nonfinite_steps"]),
        (["--data.init_args.dataset", "no/such/dir"], ["'no/such/dir'", "neither an embedded dataset"]),
        (
            ["-c", str(ROOT / "configs/editor/ke.yaml"), "--data.init_args.n_edits", "2"],
            ["KE", "n_edits is 2"],
        ),
    ],
    ids=["n_edits", "sequential", "max_nonfinite_steps", "dataset-dir", "ke-n_edits"],
)
def test_bad_options_are_one_message(tmp_path, monkeypatch, run_mendlight, args, words):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_mendlight(["fit", "-c", str(TINY), *args])
    assert code == 2
    line = one_error_line(err)
    assert all(w in line for w in words), line
    assert not (tmp_path / "runs").exists()  # no run directory is left behind, not even an empty one


def test_missing_files_are_one_message(tmp_path, monkeypatch, run_mendlight):
    monkeypatch.chdir(tmp_path)
    data = _records_dir(tmp_path, "Rome")
    (data / "test.jsonl").unlink()
    code, _, err = run_mendlight(["test", "-c", str(TINY), "--data.init_args.dataset", str(data)])
    assert code == 2 and "missing split file" in one_error_line(err)
    code, _, err = run_mendlight(["edit", "-c", str(TINY), "--file", "no-such.jsonl"])
    assert code == 2 and "no-such.jsonl" in one_error_line(err)
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "\n")
    code, _, err = run_mendlight(["edit", "-c", str(TINY), "--file", str(deep)])
    assert code == 2 and "deep.jsonl:1" in one_error_line(err)
    assert not list(tmp_path.glob("runs/*/version_*"))


def test_early_stopping_with_a_patience_in_steps_on_the_tiny_config(tmp_path, monkeypatch, run_mendlight):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "-c", str(TINY), "--trainer.max_steps", "400", "--trainer.val_check_interval", "5"]
    args += ["--early_stopping.patience_steps", "10", "--early_stopping.monitor", "val/loss"]
    args += ["--data.init_args.max_eval_records", "2", "--trainer.limit_val_batches", "2"]
    code, _, err = run_mendlight(args)
    assert code == 0, err[-3000:]
    version = tmp_path / "runs" / "tiny_debug" / "version_0"
    summary = _strict_json(version / "fit.json")
    assert summary["finished"] is True and summary["reason"] == "early_stopping"
    assert summary["global_step"] < 400
    assert 0 < summary["validation_time_s"] < summary["train_time_s"]
    assert summary["validation_share"] == pytest.approx(
        summary["validation_time_s"] / summary["train_time_s"], abs=1e-3
    )
    ckpt = torch.load(version / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("StepEarlyStopping")]
    assert 10 <= summary["global_step"] - state["best_step"] < 15  # stopped at the first validation due
    # the best checkpoint (lowest val/loss) is the early stopper's best step
    assert Path(summary["best_checkpoint"]).name == f"best-{state['best_step']}.ckpt"
