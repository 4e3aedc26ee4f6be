import pytest
import torch

from mendlight.models.arch import arch_spec, resolve_edit_params
from mendlight.models.factors import FactorCapture
from mendlight.models.functional import edited_params, forward_with, state_fingerprint
from mendlight.models.split import BlockSplit
from mendlight.models.tiny import build_tiny_model


def _rows():
    ids = torch.randint(3, 200, (3, 11), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return ids, mask


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gpt_neo"])
def test_split_forward_equals_full_forward_with_and_without_deltas(model_type):
    model = build_tiny_model(model_type).eval().requires_grad_(False)
    names = resolve_edit_params(model)
    spec = arch_spec(model)
    split = BlockSplit(model, spec.blocks, first=1)
    ids, mask = _rows()
    before = state_fingerprint(model)
    hidden = split.bottom(ids, mask)
    assert torch.allclose(
        split.top(hidden, ids, mask), model(input_ids=ids, attention_mask=mask).logits, atol=1e-5
    )
    g = torch.Generator().manual_seed(1)
    deltas = {n: 0.3 * torch.randn(model.get_parameter(n).shape, generator=g) for n in names}
    full = forward_with(model, deltas, ids, mask)
    top = split.top(hidden, ids, mask, edited_params(model, deltas))
    assert torch.allclose(top, full, atol=1e-5)
    assert state_fingerprint(model) == before
    assert len(model.get_submodule(spec.blocks)) == 4  # the block list is restored


def test_split_factors_equal_full_factors():
    model = build_tiny_model("llama").eval().requires_grad_(False)
    names = resolve_edit_params(model)
    split = BlockSplit(model, "model.layers", first=1)
    ids, mask = _rows()
    labels = ids.roll(-1, 1)
    labels[:, :5] = -100

    def loss_of(logits):
        keep = labels != -100
        return torch.nn.functional.cross_entropy(logits[keep], labels[keep])

    results = []
    for use_split in (False, True):
        leaves = {n: model.get_parameter(n).detach().requires_grad_(True) for n in names}
        with FactorCapture(model, names) as cap:
            if use_split:
                logits = split.top(split.bottom(ids, mask), ids, mask, leaves)
            else:
                kwargs = {"input_ids": ids, "attention_mask": mask}
                logits = torch.func.functional_call(model, leaves, args=(), kwargs=kwargs).logits
            cap.backward(loss_of(logits))
        results.append({n: cap.factors(n) for n in names})
    for n in names:
        for a, b in zip(results[0][n], results[1][n], strict=True):
            assert torch.allclose(a, b, atol=1e-6), n


def test_params_below_the_split_are_rejected():
    model = build_tiny_model("llama")
    split = BlockSplit(model, "model.layers", first=2)
    ids, mask = _rows()
    hidden = split.bottom(ids, mask)
    with pytest.raises(ValueError, match="below the split"):
        split.top(
            hidden, ids, mask, {"model.layers.0.mlp.up_proj.weight": model.model.layers[0].mlp.up_proj.weight}
        )


@pytest.mark.parametrize("model_type", ["llama", "gpt_neo"])
def test_cached_autocast_weights_give_exactly_plain_autocast(model_type):
    """The once-made bf16 copies of the frozen linear weights change nothing but the time."""
    model = build_tiny_model(model_type).eval().requires_grad_(False)
    names = resolve_edit_params(model)
    split = BlockSplit(model, arch_spec(model).blocks, first=1)
    ids, mask = _rows()
    g = torch.Generator().manual_seed(1)
    deltas = {n: 0.3 * torch.randn(model.get_parameter(n).shape, generator=g) for n in names}
    results = []
    for cached in (True, False):
        if not cached:
            split.casts.weights = {}  # every pass casts every weight, as plain autocast does
        leaves = {n: w.clone().requires_grad_(True) for n, w in edited_params(model, deltas).items()}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = split.bottom(ids, mask)
            plain = split.top(hidden, ids, mask)
            edited = split.top(hidden, ids, mask, leaves)
        edited.float().square().mean().backward()
        results.append((hidden, plain, edited, [leaves[n].grad for n in names]))
    assert results[0][1].dtype == torch.bfloat16  # the head really ran in bf16
    for a, b in zip(results[0][:3], results[1][:3], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(results[0][3], results[1][3], strict=True):
        assert torch.equal(a, b)


def test_cached_autocast_weights_follow_in_place_changes_and_stay_out_of_float32():
    model = build_tiny_model("llama").eval().requires_grad_(False)
    split = BlockSplit(model, "model.layers", first=1)
    ids, mask = _rows()
    assert split.casts.params(ids.device) == {}  # autocast off: nothing is copied
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = split.top(split.bottom(ids, mask), ids, mask)
        with torch.no_grad():
            model.model.layers[0].mlp.down_proj.weight.mul_(3.0)  # below the split: a different hidden
            model.model.layers[2].mlp.up_proj.weight.mul_(3.0)  # above it: different logits
        hidden = split.bottom(ids, mask)
        after = split.top(hidden, ids, mask)
        split.casts.clear()
        fresh = split.top(split.bottom(ids, mask), ids, mask)
    assert not torch.equal(before, after)
    assert torch.equal(after, fresh)  # the copies were remade, not served stale
    assert split.casts.params(ids.device) == {}  # outside autocast again
    with torch.no_grad():
        exact = split.top(split.bottom(ids, mask), ids, mask)
    assert exact.dtype == torch.float32
    assert torch.allclose(exact, model(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
