import pytest
import torch

from mendlight.editors import FT
from mendlight.losses import sequence_success
from mendlight.models.functional import forward_with, state_fingerprint
from tests.editors.helpers import FACT


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
