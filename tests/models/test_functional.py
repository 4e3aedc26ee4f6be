import torch
from transformers import AutoModelForCausalLM

from mendlight.losses import sequence_success
from mendlight.models.arch import resolve_edit_params
from mendlight.models.functional import (
    forward_with,
    greedy_continuations,
    materialised,
    save_edited,
    state_fingerprint,
)
from mendlight.models.loading import load_base_model, load_tokenizer


def _deltas(model, scale=0.5):
    g = torch.Generator().manual_seed(0)
    return {
        n: scale * torch.randn(model.get_parameter(n).shape, generator=g) for n in resolve_edit_params(model)
    }


def test_forward_with_changes_logits_but_never_the_base():
    model = load_base_model("tiny-random-llama")
    before = state_fingerprint(model)
    ids = torch.tensor([[10, 20, 30, 40]])
    plain = forward_with(model, None, ids)
    deltas = {k: v.requires_grad_(True) for k, v in _deltas(model).items()}
    edited = forward_with(model, deltas, ids)
    assert not torch.allclose(plain, edited)
    edited.sum().backward()  # gradients reach the deltas, not the base
    assert all(d.grad is not None and d.grad.abs().sum() > 0 for d in deltas.values())
    assert all(p.grad is None for p in model.parameters())
    assert state_fingerprint(model) == before


def test_materialised_restores_bit_for_bit_and_matches_functional():
    model = load_base_model("tiny-random-gpt2")
    before = state_fingerprint(model)
    deltas = _deltas(model, scale=0.3)
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    functional = forward_with(model, deltas, ids)
    with materialised(model, deltas):
        in_place = model(input_ids=ids).logits
        assert state_fingerprint(model) != before
    assert torch.allclose(functional, in_place, atol=1e-5)
    assert state_fingerprint(model) == before


def test_save_edited_loads_with_plain_transformers(tmp_path):
    model = load_base_model("tiny-random-llama")
    tok = load_tokenizer("tiny-random-llama")
    deltas = _deltas(model)
    ids = torch.tensor([[12, 13, 14]])
    expected = forward_with(model, deltas, ids)
    save_edited(model, tok, deltas, tmp_path / "edited")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "edited")
    assert torch.allclose(reloaded(input_ids=ids).logits, expected, atol=1e-5)


def test_greedy_continuations_follow_argmax():
    model = load_base_model("tiny-random-llama")
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = (ids != 0).long()
    out = greedy_continuations(model, None, ids, mask, max_new_tokens=3)
    assert [len(o) for o in out] == [3, 3]
    first = model(input_ids=ids[:1, :3]).logits[0, -1].argmax().item()
    assert out[0][0] == first


def test_sequence_success_requires_every_target_token():
    logits = torch.zeros(3, 3, 5)
    logits[0, 1, 2] = logits[0, 2, 3] = 1  # row 0 predicts 2, 3 at positions 1, 2
    logits[1, 1, 2] = 1  # row 1 gets only the first token right
    labels = torch.tensor([[-100, 2, 3], [-100, 2, 3], [-100, -100, -100]])
    assert sequence_success(logits, labels).tolist() == [True, False, False]
