"""experiments/malmen_step_sweep.py: a trained MALMEN validated with its λ shifted and its η scaled."""

import argparse
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "malmen_step_sweep.py"
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny_debug.yaml"
spec = importlib.util.spec_from_file_location("malmen_step_sweep", SCRIPT)
sweep_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep_script)


def test_settings_are_parsed_and_bad_ones_refused():
    assert sweep_script.parse_setting("-2:0.5") == (-2.0, 0.5)
    for bad in ("3", "a:1", "0:0", "0:-1", "nan:1"):
        with pytest.raises(argparse.ArgumentTypeError, match="SHIFT:FACTOR"):
            sweep_script.parse_setting(bad)


def test_each_setting_edits_the_same_records_and_the_editor_is_restored(tmp_path, monkeypatch, no_argv):
    from mendlight.cli import main

    monkeypatch.chdir(tmp_path)
    main(["fit", "-c", str(TINY), "--model=MALMEN", "--trainer.max_steps=2", "--trainer.limit_val_batches=0"])
    (run,) = (tmp_path / "runs").glob("*/version_0")
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    out = tmp_path / "sweep"
    settings = ["0:1", "-2:1", "0:1", "0:1e-12"]
    sweep_script.main(
        [
            str(run / "checkpoints" / "last.ckpt"),
            "--k",
            "2",
            "--batches",
            "2",
            "--settings",
            *settings,
            "--out",
            str(out),
        ]
    )
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(row["shift"], row["factor"]) for row in rows] == [(0, 1), (-2, 1), (0, 1), (0, 1e-12)]
    lam = last["log_lambda"].exp()
    assert math.isclose(rows[0]["lambda_max"], float(lam.max()), rel_tol=1e-6)
    assert math.isclose(rows[1]["lambda_max"], float(lam.max()) * math.exp(-2), rel_tol=1e-5)
    assert math.isclose(rows[3]["eta_max"], float(last["alpha"].max()) * 1e-12, rel_tol=1e-5)
    # the editor is restored after each setting: the trained editor measured twice gives the same numbers
    keys = ("n_records", "es", "es_edit", "es_equiv", "acc_drawdown")
    assert {key: rows[0][key] for key in keys} == {key: rows[2][key] for key in keys}
    assert rows[0]["n_records"] == 4
    # η → 0 leaves the model as it was: no locality answer changes
    assert rows[3]["acc_drawdown"] == 0.0
    lines = out.with_suffix(".md").read_text().splitlines()
    assert lines[0] == "# MALMEN's λ and η at a larger k (validation)"
    assert sum(line.startswith("| +0 | ×1 |") for line in lines) == 2
