"""Killed and resumed training is bit-identical to an uninterrupted run; SIGTERM/SIGINT stop cleanly.

Every run is a real ``mendlight fit`` subprocess (tests/cli/fit_driver.py) on configs/tiny_debug.yaml with
16 training records (16 steps an epoch), validation every 8 steps and 40 steps in all. The run is killed
after the checkpoint at an epoch boundary (step 16), stopped by signals mid-epoch (steps 21 and 24) and
resumed across an epoch boundary (step 32). The driver logs the records of every training step and can send
itself a signal after a given step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("fit_driver.py")
FIT = [
    "fit",
    "-c",
    str(ROOT / "configs" / "tiny_debug.yaml"),
    "--data.init_args.max_train_records",
    "16",
    "--trainer.max_steps",
    "40",
    "--trainer.val_check_interval",
    "8",
]


@dataclass
class Run:
    """One driver run: its exit status, output, run directory and per-step training records."""

    returncode: int
    output: str
    version: Path
    trail: dict[int, str]

    @property
    def last(self) -> dict:
        return torch.load(self.version / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)

    @property
    def fit_json(self) -> dict:
        return json.loads((self.version / "fit.json").read_text())


def _run(cwd: Path, name: str, stop_at: int = 0, sig: str = "KILL", resume: Run | None = None) -> Run:
    before = set((cwd / "runs" / "tiny_debug").glob("version_*"))
    trail = cwd / f"{name}.trail"
    args = [*FIT, "--ckpt_path", str(resume.version / "checkpoints" / "last.ckpt")] if resume else FIT
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(DRIVER), str(trail), str(stop_at), sig, "--", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    (new,) = set((cwd / "runs" / "tiny_debug").glob("version_*")) - before
    lines = trail.read_text().splitlines() if trail.exists() else []
    steps = dict(line.split("\t") for line in lines)
    return Run(proc.returncode, proc.stdout + proc.stderr, new, {int(k): v for k, v in steps.items()})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def uninterrupted(workdir) -> Run:
    run = _run(workdir, "uninterrupted")
    assert run.returncode == 0, run.output[-3000:]
    assert sorted(run.trail) == list(range(1, 41))
    return run


def _assert_same_training(final: Run, reference: Run, effective_trail: dict[int, str]) -> None:
    """Editor networks, α, Welford statistics (counts included), optimizer state and records all equal."""
    got, want = final.last, reference.last
    assert got["global_step"] == want["global_step"] == 40
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    assert any(k.endswith("u_norm.count") for k in want["state_dict"])  # the statistics were compared
    opt_got, opt_want = got["optimizer_states"][0], want["optimizer_states"][0]
    assert opt_got["state"].keys() == opt_want["state"].keys()
    for index, state in opt_want["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(opt_got["state"][index][name]), torch.as_tensor(value))
    assert opt_got["param_groups"] == opt_want["param_groups"]
    assert got["loops"]["fit_loop"]["epoch_progress"] == want["loops"]["fit_loop"]["epoch_progress"]
    assert effective_trail == reference.trail  # the same record at every step


def test_killed_stopped_and_resumed_training_is_bit_identical(workdir, uninterrupted):
    """One training run, interrupted three ways and resumed each time, equals the uninterrupted run."""
    # SIGKILL after step 19: nothing is written; last.ckpt is the validation of step 16, the end of epoch 0,
    # and fit.json still says "running", so the run is recognisably unfinished.
    killed = _run(workdir, "kill19", stop_at=19)
    assert killed.returncode == -signal.SIGKILL
    assert killed.fit_json["status"] == "running" and killed.fit_json["finished"] is False
    assert killed.last["global_step"] == 16

    # Resumed; SIGTERM after step 21 (no validation due): last.ckpt is written at step 21, status 143.
    term = _run(workdir, "term21", stop_at=21, sig="TERM", resume=killed)
    assert term.returncode == 143, term.output[-3000:]
    assert min(term.trail) == 17
    assert "training stopped by SIGTERM at step 21" in term.output and "Traceback" not in term.output
    summary = term.fit_json
    assert summary["status"] == "stopped" and summary["finished"] is False and summary["reason"] == "SIGTERM"
    assert summary["global_step"] == 21 and term.last["global_step"] == 21
    assert summary["resumed_from"].endswith("last.ckpt")

    # Resumed; SIGINT (Ctrl-C) after step 24, where a validation is due: it runs, then the run stops (130).
    interrupt = _run(workdir, "int24", stop_at=24, sig="INT", resume=term)
    assert interrupt.returncode == 130, interrupt.output[-3000:]
    assert min(interrupt.trail) == 22 and "validation at step 24" in interrupt.output
    assert interrupt.fit_json["reason"] == "SIGINT" and interrupt.last["global_step"] == 24

    # Resumed to the end, across the epoch boundary at step 32; the validation of step 24 is not repeated.
    rest = _run(workdir, "resume24", resume=interrupt)
    assert rest.returncode == 0, rest.output[-3000:]
    assert min(rest.trail) == 25
    assert "validation at step 24" not in rest.output and "validation at step 32" in rest.output
    assert rest.fit_json["finished"] is True and rest.fit_json["reason"] == "max_steps"

    trail = {s: r for s, r in killed.trail.items() if s <= 16}
    trail |= {s: r for s, r in term.trail.items() if s <= 21}
    trail |= {s: r for s, r in interrupt.trail.items() if s <= 24}
    _assert_same_training(rest, uninterrupted, trail | rest.trail)
