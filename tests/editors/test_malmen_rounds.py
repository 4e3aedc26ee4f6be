"""MALMEN's ``edit_rounds``: the solve repeated on the model earlier rounds made, outside training only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mendlight.editors import MALMEN
from mendlight.errors import ConfigError
from mendlight.losses import edit_nll
from mendlight.metrics import sequence_correct
from mendlight.models.functional import materialised, state_fingerprint
from tests.editors.helpers import rows
from tests.editors.test_malmen import (  # noqa: F401
    PAIRS,
    assert_relatively_close,
    filled,
    make,
    no_base,
    one_thread,
    perturb,
)

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny_debug.yaml"


def edit_loss(editor: MALMEN, edit: dict, deltas: dict[str, torch.Tensor]) -> float:
    """The edit NLL of ``edit`` at ``θ + deltas``."""
    with torch.no_grad(), materialised(editor.base, deltas):
        return float(edit_nll(editor.base(input_ids=edit["input_ids"]).logits, edit["labels"]))


def counting_rounds(editor: MALMEN, monkeypatch) -> list[int]:
    """Count the calls of ``solve_round`` (one per round)."""
    calls: list[int] = []
    solve = editor.solve_round

    def counted(*args, **kwargs):
        calls.append(1)
        return solve(*args, **kwargs)

    monkeypatch.setattr(editor, "solve_round", counted)
    return calls


def test_rounds_are_the_masked_solve_repeated_on_the_edited_model_and_lower_the_edit_loss():
    # identity init without norm: each round's values are −η‖u‖²δ, a descent direction of the edit loss
    editor = make(norm=False, edit_lr=0.02, log_lambda=0.0)
    editor.eval()
    edit = rows(PAIRS[:4])
    before = state_fingerprint(editor.base)
    with torch.no_grad():
        one = editor.edit(edit)
        shapes = {n: d.shape for n, d in editor.solve_round(edit).items()}
        assert {n: d.shape for n, d in one.items()} == shapes
        editor.hparams.edit_rounds = 3
        three = editor.edit(edit)
        by_hand = dict(one)
        for _ in range(2):
            with materialised(editor.base, by_hand):
                failing = ~editor.succeeding_rows(edit)
                assert failing.any()  # the tiny model's edits are not all done after one small step
                more = editor.solve_round(edit, shifted=failing)
            by_hand = {n: by_hand[n] + more[n] for n in by_hand}
    assert state_fingerprint(editor.base) == before  # the rounds' weights are restored exactly
    for name in editor.edit_names:
        torch.testing.assert_close(three[name], by_hand[name], atol=1e-7, rtol=1e-5)
        assert float((three[name] - one[name]).norm()) > 0.05 * float(one[name].norm())  # rounds add updates
    losses = [edit_loss(editor, edit, {}), edit_loss(editor, edit, one), edit_loss(editor, edit, three)]
    assert losses[0] > losses[1] > losses[2]


def test_training_makes_one_round_whatever_edit_rounds_says(monkeypatch):
    editor = filled(make(edit_lr=0.1, edit_rounds=4))
    perturb(editor)
    calls = counting_rounds(editor, monkeypatch)
    edit = rows(PAIRS[:3])
    with torch.no_grad():
        editor.edit(edit)
    assert len(calls) == 4
    editor.train()
    calls.clear()
    deltas = editor.edit(edit)
    assert len(calls) == 1
    assert all(d.requires_grad for d in deltas.values())  # the meta-gradient goes through the one solve


def test_edit_rounds_below_one_is_a_config_error(no_base):  # noqa: F811
    with pytest.raises(ConfigError, match="MALMEN: edit_rounds must be at least 1, got 0"):
        MALMEN(base_model="tiny-random-llama", edit_rounds=0)


@pytest.mark.parametrize(
    "given", [["--model.init_args.edit_rounds", "2"], ["-c", str(TINY.parent / "test" / "rounds2.yaml")]]
)
def test_test_with_a_checkpoint_keeps_the_edit_rounds_given(given, tmp_path, monkeypatch, no_argv):
    from mendlight.cli import main

    monkeypatch.chdir(tmp_path)
    main(["fit", "-c", str(TINY), "--model=MALMEN", "--trainer.max_steps=2", "--trainer.limit_val_batches=0"])
    (run,) = (tmp_path / "runs").glob("*/version_0")
    main(
        ["test", "-c", str(run / "config.yaml"), *given]
        + ["--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.init_args.max_eval_records", "4"]
    )
    results = json.loads((run / "tests" / "version_0" / "results.json").read_text())
    assert results["editor"] == "MALMEN"
    assert results["hparams"]["edit_rounds"] == 2


def test_succeeding_rows_is_the_evaluations_edit_success_at_the_current_weights():
    editor = filled(make(edit_lr=0.5))
    perturb(editor, scale=0.05)
    edit = rows(PAIRS)
    with torch.no_grad():
        logits = editor.base(input_ids=edit["input_ids"], attention_mask=edit["attention_mask"]).logits
        scored = edit["labels"] != -100
        # rows 0, 2 and 5 ask for what the model already predicts; row 5 misses one token of it
        for row in (0, 2, 5):
            edit["labels"][row][scored[row]] = logits[row].argmax(-1)[scored[row]]
        first = int(scored[5].nonzero()[0])
        edit["labels"][5, first] = (edit["labels"][5, first] + 1) % logits.shape[-1]
        want = torch.tensor([True, False, True, False, False, False, False])
        assert torch.equal(editor.succeeding_rows(edit), want)
        editor.hparams.lm_chunk = 3  # chunks of rows give the same flags
        assert torch.equal(editor.succeeding_rows(edit), want)
        deltas = editor.edit(edit)
        with materialised(editor.base, deltas):  # at θ + Δ: the flags of the edited model
            edited = editor.base(input_ids=edit["input_ids"], attention_mask=edit["attention_mask"]).logits
            assert torch.equal(
                editor.succeeding_rows(edit), sequence_correct(edited.argmax(-1), edit["labels"])
            )


def test_edits_without_a_shift_keep_their_keys_in_the_solve_with_zero_values():
    editor = filled(make(edit_lr=0.1, log_lambda=-0.5))
    perturb(editor)
    edit = rows(PAIRS[:4])
    shifted = torch.tensor([True, False, True, False])
    with torch.no_grad():
        torch.testing.assert_close(
            editor.solve_round(edit, shifted=torch.ones(4, dtype=torch.bool)), editor.solve_round(edit)
        )
        assert not any(
            d.any() for d in editor.solve_round(edit, shifted=torch.zeros(4, dtype=torch.bool)).values()
        )
        deltas = editor.solve_round(edit, shifted=shifted)
        factors = editor.keyed_factors(edit)
    for index, name in enumerate(editor.edit_names):
        keys, grads, key_rows = factors[name]
        assert set(key_rows.tolist()) == {0, 1, 2, 3}  # every edit's keys are in the solve
        values = editor.value_chunks(name, keys, grads)(0, keys.shape[0]).detach()
        values[~shifted[key_rows]] = 0.0
        scale = math.exp(float(editor.log_lambda[index]) / 2)
        a = torch.cat([keys, scale * torch.eye(keys.shape[1])]).double()
        b = torch.cat([values, torch.zeros(keys.shape[1], values.shape[1])]).double()
        expected = torch.linalg.lstsq(a, b).solution.float()
        got = deltas[name] if editor.conv1d[name] else deltas[name].T
        assert_relatively_close(got, expected, 1e-4)


def test_rounds_stop_once_every_edit_succeeds(monkeypatch):
    editor = filled(make(edit_lr=0.1, edit_rounds=5))
    perturb(editor)
    calls = counting_rounds(editor, monkeypatch)
    monkeypatch.setattr(editor, "succeeding_rows", lambda rows, hidden=None: torch.ones(3, dtype=torch.bool))
    with torch.no_grad():
        deltas = editor.edit(rows(PAIRS[:3]))
        assert len(calls) == 1
        for name, delta in editor.solve_round(rows(PAIRS[:3])).items():
            torch.testing.assert_close(deltas[name], delta)
