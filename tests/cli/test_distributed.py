"""``fit``, ``validate``, ``test`` and ``predict`` with two DDP processes (gloo, CPU) end to end.

Two-process runs are real ``mendlight`` subprocesses (Lightning's DDP launcher starts the second process by
re-running the command line). The evaluation split has 7 records, so the processes hold uneven shares; the
test uses batches of 2 simultaneous edits in sequential chains of 3 batches (a unit of 6 records), so one
process evaluates a chain and a short one, the other a short batch and padding. Every metric must equal the
one-process run's, with each record counted once.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mendlight.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"
SEVEN = ["--data.init_args.max_eval_records", "7", "--trainer.limit_val_batches", "null"]
SEVEN += ["--trainer.limit_test_batches", "null"]
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
TEST_PROTOCOL = ["--data.init_args.eval_n_edits", "2", "--model.init_args.sequential", "3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cwd: Path, args: list[str]) -> subprocess.Popen:
    """Start ``mendlight <args>`` with two DDP processes (one torch thread each, a port of its own)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MASTER_PORT": str(_free_port())}
    cmd = [sys.executable, "-m", "mendlight", *args, *DDP]
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    return out


def _only_run(cwd: Path, name: str) -> Path:
    runs = sorted((cwd / "runs" / name).glob("version_*"))
    assert len(runs) == 1, runs  # one run directory: only process 0 writes files
    return runs[0]


def _table(out: str) -> dict[str, float]:
    """The metrics table Lightning prints at the end of validate/test."""
    return {k: float(v) for k, v in re.findall(r"│\s*((?:val|test)/\w+)\s*│\s*([-\d.eE+]+)\s*│", out)}


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """A two-process fit, then two-process validate, test and predict from its checkpoint, run together."""
    cwd = tmp_path_factory.mktemp("ddp")
    fit = _finish(_start(cwd, ["fit", "-c", str(TINY), *SEVEN, "--trainer.logger.init_args.name", "fit"]))
    version = _only_run(cwd, "fit")
    config, ckpt = version / "config.yaml", version / "checkpoints" / "last.ckpt"
    common = ["-c", str(config), "--ckpt_path", str(ckpt), *SEVEN]
    procs = {
        "validate": _start(cwd, ["validate", *common, "--trainer.logger.init_args.name", "validate"]),
        "test": _start(cwd, ["test", *common, *TEST_PROTOCOL, "--trainer.logger.init_args.name", "test"]),
        "predict": _start(cwd, ["predict", *common, "--trainer.logger.init_args.name", "predict"]),
    }
    outputs = {name: _finish(proc) for name, proc in procs.items()}
    return {"cwd": cwd, "fit": fit, "fit_run": version, "config": config, "ckpt": ckpt, **outputs}


def _one_process(ddp_runs, monkeypatch, subcommand: str, extra: list[str], name: str) -> Path:
    cwd = ddp_runs["cwd"]
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["mendlight"])
    one = ["--trainer.devices", "1", "--trainer.strategy", "auto"]  # the run's config.yaml says ddp on 2
    main(
        [
            subcommand,
            "-c",
            str(ddp_runs["config"]),
            "--ckpt_path",
            str(ddp_runs["ckpt"]),
            *SEVEN,
            *one,
            *extra,
        ]
    )
    return _only_run(cwd, name)


def test_fit_with_two_processes_finishes_and_writes_once(ddp_runs):
    version = ddp_runs["fit_run"]
    summary = json.loads((version / "fit.json").read_text())
    assert summary["status"] == "finished" and summary["finished"] is True
    assert summary["global_step"] == 6 and summary["reason"] == "max_steps"
    ckpt = torch.load(ddp_runs["ckpt"], map_location="cpu", weights_only=True)
    counts = [int(v) for k, v in ckpt["state_dict"].items() if k.endswith("u_norm.count")]
    # every step saw one edit per process: the statistics merged both processes' rows
    assert counts and all(c > 0 for c in counts)
    assert ckpt["EditDataModule"] == {"epoch": 0, "consumed_batches": 6}
    assert "validation at step 6" in ddp_runs["fit"]  # uneven validation (7 records) went through DDP


def test_test_with_two_processes_equals_one_process(ddp_runs, monkeypatch, capsys):
    two = _only_run(ddp_runs["cwd"], "test")
    one = _one_process(
        ddp_runs, monkeypatch, "test", [*TEST_PROTOCOL, "--trainer.logger.init_args.name", "t1"], "t1"
    )
    a, b = (json.loads((r / "results.json").read_text()) for r in (one, two))
    assert [r["id"] for r in b["records"]] == [r["id"] for r in a["records"]]  # all 7, once, in file order
    assert len(b["records"]) == 7 and b["subsets"]["all"]["n_records"] == 7
    for key, value in a["subsets"]["all"].items():
        if key != "edit_latency_s":
            assert b["subsets"]["all"][key] == pytest.approx(value, abs=1e-6), key
    for ra, rb in zip(a["records"], b["records"], strict=True):
        assert (ra["chain"], ra["chain_position"], ra["chain_length"]) == (
            rb["chain"],
            rb["chain_position"],
            rb["chain_length"],
        )
        assert ra["es_edit"] == rb["es_edit"] and ra["loc_agree_sum"] == pytest.approx(rb["loc_agree_sum"])
    assert [r["chain"] for r in b["records"]] == [0] * 6 + [1]
    assert (two / "results.md").is_file()
    logged = _table(ddp_runs["test"])
    assert logged["test/es"] == pytest.approx(a["subsets"]["all"]["es"], abs=1e-6)


def test_validate_with_two_processes_equals_one_process(ddp_runs, monkeypatch, capsys):
    _one_process(ddp_runs, monkeypatch, "validate", ["--trainer.logger.init_args.name", "v1"], "v1")
    one, two = _table(capsys.readouterr().out), _table(ddp_runs["validate"])
    assert {"val/es", "val/loss", "val/locality"} <= set(two)
    for key, value in one.items():
        if key != "val/edit_latency_s":
            assert two[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_predict_with_two_processes_writes_each_record_once(ddp_runs, monkeypatch):
    two = _only_run(ddp_runs["cwd"], "predict")
    one = _one_process(ddp_runs, monkeypatch, "predict", ["--trainer.logger.init_args.name", "p1"], "p1")
    rows_two = [json.loads(line) for line in (two / "predictions.jsonl").read_text().splitlines()]
    rows_one = [json.loads(line) for line in (one / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows_two] == [r["id"] for r in rows_one] and len(rows_two) == 7
    assert [r["post_output"] for r in rows_two] == [r["post_output"] for r in rows_one]
