import pytest
import torch

from mendlight.nn import GradientTransform, WelfordNormalizer, pseudo_gradient

X_DIM, D_DIM = 6, 10

VARIANTS = {
    "combine": dict(),
    "separate": dict(combine=False),
    "one_sided": dict(combine=False, one_sided=True),
    "x_only": dict(combine=False, x_only=True),
    "delta_only": dict(combine=False, delta_only=True),
    "xavier": dict(init="xavier"),
    "no_norm": dict(norm=False),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _factors(n=8, x_dim=X_DIM, d_dim=D_DIM):
    return torch.randn(n, x_dim) * 3 + 1, torch.randn(n, d_dim) * 1e-3


def _perturb(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(".U"):
                p.normal_()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("n_modes", [None, 3])
def test_variant_output_shapes(variant, n_modes):
    gt = GradientTransform(X_DIM, D_DIM, rank=4, n_modes=n_modes, **VARIANTS[variant])
    u, d = _factors(8)
    u_t, d_t = gt(u, d, mode=None if n_modes is None else 2)
    assert u_t.shape == (8, X_DIM) and d_t.shape == (8, D_DIM)
    assert u_t.dtype == torch.float32 and d_t.dtype == torch.float32
    assert torch.isfinite(u_t).all() and torch.isfinite(d_t).all()
    pseudo_gradient(u_t, d_t, conv1d=False).sum().backward()  # differentiable w.r.t. the editor
    assert any(p.grad is not None for p in gt.parameters())


@pytest.mark.parametrize(
    ("kwargs", "nets"),
    [
        (dict(), {"combined_net"}),
        (dict(combine=False), {"x_net", "delta_net"}),
        (dict(combine=False, x_only=True), {"x_net"}),
        (dict(combine=False, delta_only=True), {"delta_net"}),
    ],
)
def test_networks_per_variant(kwargs, nets):
    gt = GradientTransform(X_DIM, D_DIM, rank=4, **kwargs)
    present = {n for n in ("combined_net", "x_net", "delta_net") if getattr(gt, n) is not None}
    assert present == nets
    if "combined_net" in nets:
        assert gt.combined_net.dim == X_DIM + D_DIM


@pytest.mark.parametrize(("x_dim", "d_dim", "transformed"), [(6, 10, "x"), (10, 6, "delta"), (8, 8, "x")])
def test_one_sided_transforms_only_the_smaller_side(x_dim, d_dim, transformed):
    gt = GradientTransform(x_dim, d_dim, rank=3, combine=False, one_sided=True)
    assert (gt.x_net is not None) == (transformed == "x")
    assert (gt.delta_net is not None) == (transformed == "delta")
    _perturb(gt)
    u, d = _factors(5, x_dim, d_dim)
    u_t, d_t = gt(u, d)
    u_bar, d_bar = gt.u_norm.normalize(u), gt.delta_norm.normalize(d)
    passed, changed = (d_t, u_t) if transformed == "x" else (u_t, d_t)
    ref_passed, ref_changed = (d_bar, u_bar) if transformed == "x" else (u_bar, d_bar)
    assert torch.equal(passed, ref_passed)  # the other side passes through normalised
    assert not torch.allclose(changed, ref_changed)


@pytest.mark.parametrize("variant", ["x_only", "delta_only"])
def test_single_side_variants_pass_the_other_side_through(variant):
    gt = GradientTransform(X_DIM, D_DIM, rank=4, **VARIANTS[variant])
    _perturb(gt)
    u, d = _factors(5)
    u_t, d_t = gt(u, d)
    u_bar, d_bar = gt.u_norm.normalize(u), gt.delta_norm.normalize(d)
    if variant == "x_only":
        assert torch.equal(d_t, d_bar) and not torch.allclose(u_t, u_bar)
    else:
        assert torch.equal(u_t, u_bar) and not torch.allclose(d_t, d_bar)


@pytest.mark.parametrize("variant", ["combine", "separate"])
def test_identity_at_init_without_norm(variant):
    gt = GradientTransform(X_DIM, D_DIM, rank=4, n_modes=2, norm=False, **VARIANTS[variant])
    u, d = _factors(7)
    u_t, d_t = gt(u, d, mode=1)
    assert torch.equal(u_t, u) and torch.equal(d_t, d)


def test_identity_at_init_with_norm_returns_normalised_factors():
    gt = GradientTransform(X_DIM, D_DIM, rank=4)
    u, d = _factors(7)
    u_t, d_t = gt(u, d)
    assert torch.equal(u_t, gt.u_norm.normalize(u))
    assert torch.equal(d_t, gt.delta_norm.normalize(d))
    # the current rows were included before normalising: each column is centred
    torch.testing.assert_close(u_t.mean(0), torch.zeros(X_DIM), atol=1e-5, rtol=0)
    torch.testing.assert_close(u_t.std(0), torch.ones(X_DIM), atol=1e-4, rtol=0)


def test_u_gets_gradient_on_first_backward():
    gt = GradientTransform(X_DIM, D_DIM, rank=4, n_modes=2)
    u, d = _factors(6)
    u_t, d_t = gt(u, d, mode=0)
    pseudo_gradient(u_t, d_t, conv1d=False).square().sum().backward()
    for layer in gt.combined_net.layers:
        assert layer.U.grad.abs().sum() > 0


def test_modes_give_different_outputs():
    gt = GradientTransform(X_DIM, D_DIM, rank=4, n_modes=2)
    _perturb(gt)
    with torch.no_grad():
        gt.combined_net.layers[0].scale.weight[1] = 3.0
        gt.combined_net.layers[1].shift.weight[1] = 0.2
    gt.eval()
    gt.u_norm.update(torch.randn(10, X_DIM))
    gt.delta_norm.update(torch.randn(10, D_DIM))
    u, d = _factors(5)
    a, b = gt(u, d, mode=0), gt(u, d, mode=1)
    assert not torch.allclose(a[0], b[0]) and not torch.allclose(a[1], b[1])


def test_zero_rows_are_dropped_and_do_not_touch_statistics():
    u, d = _factors(8)
    u[1] = 0
    d[4] = 0
    u[6] = 0
    d[6] = 0
    keep = torch.tensor([True, False, True, True, False, True, False, True])
    gt = GradientTransform(X_DIM, D_DIM, rank=4, norm=False)
    u_t, d_t = gt(u, d)
    assert u_t.shape == (5, X_DIM) and d_t.shape == (5, D_DIM)
    assert torch.equal(u_t, u[keep]) and torch.equal(d_t, d[keep])
    ref_u, ref_d = WelfordNormalizer(X_DIM), WelfordNormalizer(D_DIM)
    ref_u.update(u[keep])
    ref_d.update(d[keep])
    assert int(gt.u_norm.count) == 5 and int(gt.delta_norm.count) == 5
    assert torch.equal(gt.u_norm.mean, ref_u.mean) and torch.equal(gt.u_norm.m2, ref_u.m2)
    assert torch.equal(gt.delta_norm.mean, ref_d.mean) and torch.equal(gt.delta_norm.m2, ref_d.m2)


def test_all_rows_dropped_gives_empty_outputs():
    gt = GradientTransform(X_DIM, D_DIM, rank=4)
    u_t, d_t = gt(torch.zeros(3, X_DIM), torch.randn(3, D_DIM))
    assert u_t.shape == (0, X_DIM) and d_t.shape == (0, D_DIM)
    assert int(gt.u_norm.count) == 0
    assert torch.equal(pseudo_gradient(u_t, d_t, conv1d=False), torch.zeros(D_DIM, X_DIM))


def test_training_accumulates_and_eval_freezes_statistics():
    gt = GradientTransform(X_DIM, D_DIM, rank=4, norm=False)  # stats accumulate even without norm
    u1, d1 = _factors(5)
    u2, d2 = _factors(3)
    gt(u1, d1)
    gt(u2, d2)
    assert int(gt.u_norm.count) == 8
    torch.testing.assert_close(gt.u_norm.mean, torch.cat([u1, u2]).mean(0))
    before = {k: v.clone() for k, v in gt.state_dict().items() if "norm" in k}
    gt.eval()
    gt(*_factors(6))
    for k, v in before.items():
        assert torch.equal(gt.state_dict()[k], v)


def test_eval_with_empty_statistics_raises():
    gt = GradientTransform(X_DIM, D_DIM, rank=4).eval()
    with pytest.raises(RuntimeError, match="normalisation statistics are empty"):
        gt(*_factors(4))
    # without normalisation there is nothing to raise about
    gt = GradientTransform(X_DIM, D_DIM, rank=4, norm=False).eval()
    u_t, _ = gt(*_factors(4))
    assert u_t.shape == (4, X_DIM)


def test_state_dict_contains_statistics():
    gt = GradientTransform(X_DIM, D_DIM, rank=4, n_modes=2)
    gt(*_factors(5))
    sd = gt.state_dict()
    for side in ("u_norm", "delta_norm"):
        assert {f"{side}.count", f"{side}.mean", f"{side}.m2"} <= set(sd)
    other = GradientTransform(X_DIM, D_DIM, rank=4, n_modes=2).eval()
    other.load_state_dict(sd)
    gt.eval()
    u, d = _factors(4)
    for a, b in zip(gt(u, d, mode=1), other(u, d, mode=1), strict=True):
        assert torch.equal(a, b)


def test_inputs_are_cast_and_flattened():
    gt = GradientTransform(X_DIM, D_DIM, rank=4, norm=False)
    u = torch.randn(2, 3, X_DIM, dtype=torch.float64)
    d = torch.randn(2, 3, D_DIM).bfloat16()
    u_t, d_t = gt(u, d)
    assert u_t.dtype == d_t.dtype == torch.float32
    assert u_t.shape == (6, X_DIM) and d_t.shape == (6, D_DIM)
    assert torch.equal(u_t, u.reshape(6, X_DIM).float())
    with pytest.raises(ValueError):
        gt(torch.randn(3, X_DIM + 1), torch.randn(3, D_DIM))
    with pytest.raises(ValueError):
        gt(torch.randn(3, X_DIM), torch.randn(4, D_DIM))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(one_sided=True),
        dict(x_only=True),
        dict(delta_only=True),
        dict(combine=False, one_sided=True, x_only=True),
        dict(combine=False, x_only=True, delta_only=True),
        dict(combine=False, one_sided=True, delta_only=True),
    ],
)
def test_invalid_flag_combinations_raise(kwargs):
    with pytest.raises(ValueError, match="combine|exclusive"):
        GradientTransform(X_DIM, D_DIM, rank=4, **kwargs)


def test_invalid_init_raises():
    with pytest.raises(ValueError, match="xavier"):
        GradientTransform(X_DIM, D_DIM, rank=4, init="zeros")


def test_pseudo_gradient_layouts():
    u_t, d_t = torch.randn(7, X_DIM), torch.randn(7, D_DIM)
    explicit = sum(torch.outer(d_t[i], u_t[i]) for i in range(7))  # [out, in]
    lin = pseudo_gradient(u_t, d_t, conv1d=False)
    conv = pseudo_gradient(u_t, d_t, conv1d=True)
    assert lin.shape == (D_DIM, X_DIM) and conv.shape == (X_DIM, D_DIM)
    torch.testing.assert_close(lin, explicit)
    torch.testing.assert_close(conv, explicit.T)
    with pytest.raises(ValueError):
        pseudo_gradient(u_t, d_t[:3], conv1d=False)


def test_pseudo_gradient_of_raw_factors_is_the_weight_gradient():
    lin = torch.nn.Linear(X_DIM, D_DIM)
    x = torch.randn(4, 5, X_DIM)
    captured = {}
    out = lin(x)
    out.register_hook(lambda g: captured.setdefault("delta", g))
    (out.sin().sum()).backward()
    g = pseudo_gradient(x.reshape(-1, X_DIM), captured["delta"].reshape(-1, D_DIM), conv1d=False)
    torch.testing.assert_close(g, lin.weight.grad)
    # an identity editor with norm=False hands the same factors through
    gt = GradientTransform(X_DIM, D_DIM, rank=4, norm=False)
    u_t, d_t = gt(x, captured["delta"])
    torch.testing.assert_close(pseudo_gradient(u_t, d_t, conv1d=False), lin.weight.grad)
