import pytest
import torch
from torch.func import functional_call

from mendlight.models.arch import is_conv1d, resolve_edit_params
from mendlight.models.factors import FactorCapture
from mendlight.models.tiny import build_tiny_model


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gpt_neo"])
def test_outer_products_equal_autograd_gradient(model_type):
    model = build_tiny_model(model_type).eval().requires_grad_(False)
    names = resolve_edit_params(model)
    torch.manual_seed(1)
    ids = torch.randint(3, 200, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # right padding in the second row
    labels = ids.roll(-1, dims=1)
    labels[:, :4] = -100
    labels[1, 5:] = -100

    leaves = {n: model.get_parameter(n).detach().clone().requires_grad_(True) for n in names}

    def loss_of(logits):
        keep = labels != -100
        return torch.nn.functional.cross_entropy(logits[keep], labels[keep])

    with FactorCapture(model, names) as cap:
        logits = functional_call(model, leaves, kwargs={"input_ids": ids, "attention_mask": mask}).logits
        loss = loss_of(logits)
        cap.backward(loss)

    logits = functional_call(model, leaves, kwargs={"input_ids": ids, "attention_mask": mask}).logits
    true_grads = torch.autograd.grad(loss_of(logits), list(leaves.values()))

    for name, true_grad in zip(names, true_grads, strict=True):
        u, delta = cap.factors(name)
        assert u.shape[0] == delta.shape[0] == ids.numel()
        eq = "bi,bj->ij" if is_conv1d(model, name) else "bi,bj->ji"
        rebuilt = torch.einsum(eq, u, delta)
        assert rebuilt.shape == true_grad.shape
        assert torch.allclose(rebuilt, true_grad, atol=1e-6, rtol=1e-4), name
        assert true_grad.abs().sum() > 0


def test_conv1d_orientation_detected():
    gpt2 = build_tiny_model("gpt2")
    llama = build_tiny_model("llama")
    assert all(is_conv1d(gpt2, n) for n in resolve_edit_params(gpt2))
    assert not any(is_conv1d(llama, n) for n in resolve_edit_params(llama))


def test_capture_requires_differentiable_weights():
    model = build_tiny_model("llama").requires_grad_(False)
    names = resolve_edit_params(model)
    with FactorCapture(model, names) as cap:
        loss = model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum()
        with pytest.raises(RuntimeError, match="requires grad"):
            cap.backward(loss)


def test_clear_drops_what_the_capture_holds():
    model = build_tiny_model("llama").requires_grad_(True)
    names = resolve_edit_params(model)
    with FactorCapture(model, names) as cap:
        cap.backward(model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum())
    u, delta = cap.factors(names[0])
    assert u.shape[0] == delta.shape[0] == 3
    cap.clear()
    with pytest.raises(KeyError, match="no forward pass"):
        cap.factors(names[0])


def test_a_dropped_capture_frees_its_tensors_without_the_cycle_collector():
    """No reference cycle: a long training run must not hold every step's captured activations until Python's
    rarely-run full collection (a 2,000-step MEND run grew to the machine's 24 GB before this was fixed)."""
    import gc
    import weakref

    model = build_tiny_model("llama").requires_grad_(True)
    names = resolve_edit_params(model)
    held = []
    gc.disable()
    try:
        with FactorCapture(model, names) as cap:
            cap.backward(model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum())
        groups = (cap._inputs, cap._outputs, cap._grads)
        held = [weakref.ref(t) for group in groups for tensors in group.values() for t in tensors]
        factors = cap.factors(names[0])
        del cap, groups
        alive = [r for r in held if r() is not None]
        assert held and not alive, f"{len(alive)} of {len(held)} captured tensors outlived the capture"
        assert factors[0].shape[0] == 3  # factors read before the drop stay valid
    finally:
        gc.enable()
