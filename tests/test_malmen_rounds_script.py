"""experiments/malmen_rounds.py: a MALMEN run validated once per number of edit rounds."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "malmen_rounds.py"
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny_debug.yaml"
spec = importlib.util.spec_from_file_location("malmen_rounds", SCRIPT)
rounds_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rounds_script)


def test_each_round_count_is_validated_on_the_same_records_and_tabled(tmp_path, monkeypatch, no_argv):
    from mendlight.cli import main

    monkeypatch.chdir(tmp_path)
    main(["fit", "-c", str(TINY), "--model=MALMEN", "--trainer.max_steps=2", "--trainer.limit_val_batches=0"])
    (run,) = (tmp_path / "runs").glob("*/version_0")
    out = tmp_path / "results" / "rounds"
    args = [str(run), "--rounds", "1", "2", "--k", "2", "--batches", "2", "--out", str(out)]
    assert rounds_script.main(args) == 0
    payload = json.loads(out.with_suffix(".json").read_text())
    assert [row["rounds"] for row in payload["rows"]] == [1, 2]
    assert [Path(row["run"]).name for row in payload["rows"]] == ["version_0", "version_1"]
    for row in payload["rows"]:
        assert Path(row["run"]).resolve().parent == run.resolve() / "tests"  # the run's own checkpoint
        assert set(row["metrics"]) == {tag for tag, _ in rounds_script.METRICS}
        assert 0.0 <= row["metrics"]["val/es"] <= 1.0 and row["metrics"]["val/edit_latency_s"] > 0
    lines = out.with_suffix(".md").read_text().splitlines()
    assert lines[0] == "# MALMEN edit rounds, validation split, k = 2 (2 batches)"
    assert sum(line.startswith("| 1 |") or line.startswith("| 2 |") for line in lines) == 2
    assert payload["commit"] and payload["command"].startswith("python experiments/malmen_rounds.py")


def test_a_directory_without_a_run_is_refused_with_its_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        rounds_script.main([str(tmp_path)])
    assert exc.value.code == 2
    assert f"{tmp_path} is not a fit run directory" in capsys.readouterr().err


def test_the_run_directory_is_read_from_the_last_run_line():
    output = "Seed set to 0\nrun: runs/a/version_0\nmetrics...\nrun: runs/a/version_0/tests/version_3\n"
    assert rounds_script.run_dir_of(output) == Path("runs/a/version_0/tests/version_3")
    with pytest.raises(RuntimeError, match="no 'run: DIR' line"):
        rounds_script.run_dir_of("nothing here")
