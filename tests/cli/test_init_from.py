"""``mendlight fit --init_from``: a new run from a trained editor's weights (configs/tiny_debug.yaml).

One short ``fit`` (module fixture) makes the checkpoint; each test starts another run from it in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mendlight.cli import main
from mendlight.editors import MEND
from tests.cli.conftest import main_in, one_error_line

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"
FIRST_STEPS = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """``mendlight fit -c configs/tiny_debug.yaml`` for a few steps; its last checkpoint."""
    root = tmp_path_factory.mktemp("init_from")
    main_in(root, ["fit", "-c", str(TINY), "--trainer.max_steps", str(FIRST_STEPS)])
    return root / "runs" / "tiny_debug" / "version_0" / "checkpoints" / "last.ckpt"


def _editor_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _new_run(root: Path, before: set[Path]) -> Path:
    new = set((root / "runs" / "tiny_debug").glob("version_*")) - before
    assert len(new) == 1, sorted(new)
    return new.pop()


def test_training_starts_from_the_checkpoint_weights_with_a_fresh_step_count(
    trained, tmp_path, monkeypatch, no_argv
):
    monkeypatch.chdir(tmp_path)
    saved = _editor_state(trained)
    seen: dict[str, torch.Tensor] = {}
    on_fit_start = MEND.on_fit_start

    def spy(self):
        state = self.state_dict()
        seen.update({k: state[k].detach().clone() for k in saved})
        on_fit_start(self)

    monkeypatch.setattr(MEND, "on_fit_start", spy)
    steps = 2
    main(
        [
            "fit",
            "-c",
            str(TINY),
            "--trainer.max_steps",
            str(steps),
            "--data.init_args.n_edits",
            "2",  # another setting than the checkpoint's run: what a warm start is for
            "--init_from",
            str(trained),
        ]
    )
    run = _new_run(tmp_path, set())
    # every editor tensor (networks, α, the normalisers' Welford statistics) is the checkpoint's at step 0
    assert seen.keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(seen[key], value), key
    final = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == steps  # its own steps, from 0
    moved = [k for k in saved if k.endswith("alpha") or ".weight" in k]
    assert any(not torch.equal(final["state_dict"][k], saved[k]) for k in moved)  # and it trained on
    summary = json.loads((run / "fit.json").read_text())
    assert summary["initialised_from"] == {"checkpoint": str(trained), "step": FIRST_STEPS}
    assert summary["resumed_from"] is None and summary["finished"] is True


def test_a_resume_wins_over_init_from(trained, tmp_path, monkeypatch, no_argv):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "-c",
            str(TINY),
            "--trainer.max_steps",
            str(FIRST_STEPS + 1),
            "--init_from",
            str(trained),
            "--ckpt_path",
            str(trained),
        ]
    )
    summary = json.loads((_new_run(tmp_path, set()) / "fit.json").read_text())
    assert summary["initialised_from"] is None
    assert summary["resumed_from"] == str(trained)
    assert summary["global_step"] == FIRST_STEPS + 1  # continued the old run's count


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--init_from", "nowhere.ckpt"], "--init_from 'nowhere.ckpt' does not exist"),
        (["--model", "ENN", "--model.init_args.base_model", "tiny-random-llama"], "holds a MEND editor"),
        (["--model.init_args.rank", "4"], "does not fit this MEND editor"),
    ],
    ids=["missing", "other-editor", "other-sizes"],
)
def test_a_checkpoint_that_cannot_start_the_run_is_one_error(
    trained, tmp_path, monkeypatch, run_mendlight, extra, message
):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "-c", str(TINY), "--trainer.max_steps", "1"]
    if "--init_from" not in extra:
        args += ["--init_from", str(trained)]
    code, _, err = run_mendlight([*args, *extra])
    assert code == 2
    line = one_error_line(err)
    assert message in line
    assert "--init_from" in line or "config it was trained with" in line


def test_init_from_is_refused_outside_fit(trained, tmp_path, monkeypatch, run_mendlight):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_mendlight(["test", "-c", str(TINY), "--init_from", str(trained)])
    assert code == 2
    line = one_error_line(err)
    assert "--init_from" in line and "--ckpt_path" in line
