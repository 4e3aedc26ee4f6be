import pytest
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


def _argmax_loop(model, deltas, ids, mask, n, eos):
    """The reference: a full forward at θ + Δ for every new token (no cache), argmax, stop at eos."""
    from mendlight.models.functional import edited_params, model_logits

    seq2seq = model.config.is_encoder_decoder
    params = edited_params(model, deltas) if deltas else None
    rows = []
    for row, row_mask in zip(ids, mask, strict=True):
        src = row[row_mask.bool()].unsqueeze(0)
        seq = src.new_tensor([[model.config.decoder_start_token_id]]) if seq2seq else src
        new = []
        for _ in range(n):
            inputs = {"input_ids": src, "attention_mask": torch.ones_like(src)}
            if seq2seq:
                inputs.update(decoder_input_ids=seq, decoder_attention_mask=torch.ones_like(seq))
            else:
                inputs.update(input_ids=seq, attention_mask=torch.ones_like(seq))
            nxt = int(model_logits(model, inputs, params)[0, -1].argmax())
            if nxt == eos:
                break
            new.append(nxt)
            seq = torch.cat([seq, seq.new_tensor([[nxt]])], dim=1)
        rows.append(new)
    return rows


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neo", "t5", "bart"])
def test_greedy_continuations_with_a_cache_equal_the_argmax_loop(family):
    model = load_base_model(f"tiny-random-{family}")
    before = state_fingerprint(model)
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [40, 41, 42, 43]])
    mask = (ids != 0).long()
    for deltas in (None, _deltas(model, scale=0.2)):
        got = greedy_continuations(model, deltas, ids, mask, max_new_tokens=6, eos_token_id=2)
        assert got == _argmax_loop(model, deltas, ids, mask, 6, 2)
        assert all(2 not in row and len(row) <= 6 for row in got)
    assert state_fingerprint(model) == before  # the edit was written in only while decoding


def test_sequence_success_requires_every_target_token():
    logits = torch.zeros(3, 3, 5)
    logits[0, 1, 2] = logits[0, 2, 3] = 1  # row 0 predicts 2, 3 at positions 1, 2
    logits[1, 1, 2] = 1  # row 1 gets only the first token right
    labels = torch.tensor([[-100, 2, 3], [-100, 2, 3], [-100, -100, -100]])
    assert sequence_success(logits, labels).tolist() == [True, False, False]
