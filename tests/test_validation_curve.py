"""experiments/validation_curve.py: the long run's validation curve from its TensorBoard scalars."""

import importlib.util
import json
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "validation_curve.py"
spec = importlib.util.spec_from_file_location("validation_curve", SCRIPT)
validation_curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(validation_curve)


def _log(run, points):
    with SummaryWriter(str(run)) as writer:
        for step, es, dd in points:
            writer.add_scalar("val/es", es, step)
            writer.add_scalar("val/acc_drawdown", dd, step)
            writer.add_scalar("train/loss", 1.0, step)


def test_curve_of_a_resumed_run_joins_both_runs(tmp_path):
    first, resumed = tmp_path / "version_0", tmp_path / "version_1"
    _log(first, [(100, 0.2, 0.01), (200, 0.4, 0.02)])
    _log(resumed, [(300, 0.5, 0.015)])
    (resumed / "fit.json").write_text(
        json.dumps(
            {
                "status": "finished",
                "reason": "early_stopping",
                "global_step": 300,
                "train_time_s": 600,
                "validation_time_s": 60,
                "validation_share": 0.09,
                "best_checkpoint": "best-300.ckpt",
            }
        )
    )
    out = tmp_path / "out" / "curve"
    assert validation_curve.main([str(first), str(resumed), "--out", str(out), "--command", "bash x.sh"]) == 0
    md = out.with_suffix(".md").read_text()
    assert "| step | ES | acc DD |" in md
    assert "| 100 | 0.200 | 0.010 |" in md and "| 300 | 0.500 | 0.015 |" in md
    assert "finished (early_stopping) at step 300" in md and "(9% of the run)" in md
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["curves"]["val/es"] == {"100": pytest.approx(0.2), "200": pytest.approx(0.4), "300": 0.5}
    assert "train/loss" not in data["curves"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_without_validation_is_refused_by_name(tmp_path, capsys):
    run = tmp_path / "version_0"
    with SummaryWriter(str(run)) as writer:
        writer.add_scalar("train/loss", 1.0, 1)
    with pytest.raises(SystemExit) as err:
        validation_curve.main([str(run), "--out", str(tmp_path / "c")])
    assert err.value.code == 2 and "no validation scalars" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        validation_curve.main([str(tmp_path / "missing"), "--out", str(tmp_path / "c")])
    assert "no such run directory" in capsys.readouterr().err
