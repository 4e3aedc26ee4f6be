import pytest
import torch

from mendlight.editors import FT
from mendlight.losses import sequence_success
from mendlight.models.functional import forward_with, state_fingerprint
from tests.editors.helpers import FACT, five_edits


def test_ft_makes_target_argmax_and_stops_early():
    ft = FT(base_model="tiny-random-llama", edit_lr=1e-2, ft_optimizer="adam", max_steps=100)
    before = state_fingerprint(ft.base)
    edit = FACT["edit"]
    deltas = ft.edit(edit)
    logits = forward_with(ft.base, deltas, edit["input_ids"], edit["attention_mask"])
    assert bool(sequence_success(logits, edit["labels"]).all())
    assert 0 < ft.last_steps < 100
    assert state_fingerprint(ft.base) == before


def test_ft_respects_max_steps_and_reflects_the_last_update():
    ft = FT(base_model="tiny-random-llama", edit_lr=1e-6, ft_optimizer="sgd", max_steps=3)
    deltas = ft.edit(FACT["edit"])
    assert ft.last_steps == 3
    assert all(d.abs().sum() > 0 for d in deltas.values())
    zero = FT(base_model="tiny-random-llama", max_steps=0)
    assert all(torch.count_nonzero(d) == 0 for d in zero.edit(FACT["edit"]).values())


def test_ft_is_test_time_only():
    ft = FT(base_model="tiny-random-llama")
    assert not FT.requires_training
    with pytest.raises(RuntimeError, match="test-time editor"):
        ft.configure_optimizers()
    with pytest.raises(ValueError, match="ft_optimizer"):
        FT(base_model="tiny-random-llama", ft_optimizer="lbfgs")


def test_lm_chunk_steps_as_one_pass_over_all_rows_and_holds_one_chunk_at_a_time():
    from mendlight.errors import ConfigError
    from mendlight.profiling import TensorPeakMemory

    # SGD: a step is linear in the gradient, so the summed chunk gradients give the same step to rounding
    ft = FT(base_model="tiny-random-llama", edit_lr=1.0, ft_optimizer="sgd", max_steps=6)
    edits = five_edits()
    passes = []
    forward = ft.forward_rows
    ft.forward_rows = lambda r, d=None, h=None: passes.append(len(r["labels"])) or forward(r, d, h)
    ft.hparams.lm_chunk = None
    whole = ft.edit(edits)
    assert ft.last_steps == 6 and passes == [5] * 6  # six steps, no target reached: one pass each
    for chunk, per_step in ((1, [1] * 5), (2, [2, 2, 1]), (4, [4, 1])):
        passes.clear()
        ft.hparams.lm_chunk = chunk
        chunked = ft.edit(edits)
        assert ft.last_steps == 6 and passes == per_step * 6
        for name in ft.edit_names:
            torch.testing.assert_close(chunked[name], whole[name], atol=1e-7, rtol=1e-5)
            assert float(whole[name].abs().max()) > 1e-3
    ft.forward_rows = forward
    wide = {k: v.repeat(8, 1) for k, v in edits.items()}  # 40 rows
    peaks = {}
    for chunk in (4, None):
        ft.hparams.lm_chunk, ft.hparams.max_steps = chunk, 1
        with TensorPeakMemory() as memory:
            ft.edit(wide)
        peaks[chunk] = memory.peak
    assert peaks[4] < peaks[None] / 3, peaks  # the activations of 4 rows, not of 40
    with pytest.raises(ConfigError, match="FT: lm_chunk must be at least 1, got 0"):
        FT(base_model="tiny-random-llama", lm_chunk=0)


def test_a_solved_edit_takes_no_step_whatever_the_chunks():
    ft = FT(base_model="tiny-random-llama", edit_lr=1e-2, ft_optimizer="adam", max_steps=100)
    edit = FACT["edit"]
    deltas = ft.edit(edit)
    steps = ft.last_steps
    assert 0 < steps < 100
    ft.hparams.lm_chunk = 1
    rows = {k: v.repeat(3, 1) for k, v in edit.items()}  # three copies of the same edit, one per chunk
    chunked = ft.edit(rows)
    assert ft.last_steps == steps  # the same loss, so the same steps; solved at the same one
    for name in ft.edit_names:  # Adam moves an element whose gradient is rounding noise by a noisy step
        scale = float(deltas[name].abs().max())
        assert scale > 1e-3 and float((chunked[name] - deltas[name]).abs().max()) < 1e-2 * scale
