import math

import pytest
import torch
import torch.nn.functional as F

from mendlight.nn import LowRankIdentityMLP, LowRankLinear


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("n_modes", [None, 3])
def test_lowrank_linear_init_and_shapes(n_modes):
    layer = LowRankLinear(12, 5, n_modes=n_modes)
    assert layer.U.shape == (12, 5) and layer.V.shape == (5, 12) and layer.b.shape == (12,)
    assert torch.count_nonzero(layer.U) == 0
    assert torch.count_nonzero(layer.b) == 0
    # V is Xavier-uniform with gain 1: non-zero and within the bound sqrt(6 / (fan_in + fan_out))
    assert torch.count_nonzero(layer.V) == layer.V.numel()
    assert layer.V.abs().max() <= math.sqrt(6 / (12 + 5))
    if n_modes is None:
        assert layer.scale is None and layer.shift is None
    else:
        assert layer.scale.weight.shape == (n_modes, 12)
        assert torch.equal(layer.scale.weight, torch.ones(n_modes, 12))
        assert torch.equal(layer.shift.weight, torch.zeros(n_modes, 12))


def test_rank_is_clipped_to_dim():
    layer = LowRankLinear(4, 100)
    assert layer.rank == 4
    assert layer.U.shape == (4, 4) and layer.V.shape == (4, 4)


@pytest.mark.parametrize("n_modes", [None, 2])
@pytest.mark.parametrize("n_hidden", [0, 1, 3])
def test_idmlp_is_exactly_identity_at_init(n_modes, n_hidden):
    mlp = LowRankIdentityMLP(16, 4, n_hidden=n_hidden, n_modes=n_modes)
    assert len(mlp.layers) == n_hidden + 1
    z = torch.randn(9, 16) * 5
    assert torch.equal(mlp(z), z)
    if n_modes is not None:
        assert torch.equal(mlp(z, mode=1), z)


def test_u_gets_gradient_at_init_thanks_to_clamp():
    mlp = LowRankIdentityMLP(8, 3, n_hidden=1, n_modes=2)
    z = torch.randn(5, 8)
    target = torch.randn(5, 8)
    loss = (mlp(z, mode=0) * target).sum()
    loss.backward()
    for layer in mlp.layers:
        assert layer.U.grad is not None and layer.U.grad.abs().sum() > 0
        assert layer.b.grad.abs().sum() > 0
    # The same computation with relu gives U no gradient at all: that is why clamp is used.
    layer = LowRankLinear(8, 3)
    a = z @ layer.V.T @ layer.U.T + layer.b
    (((z + F.relu(a)) * target).sum()).backward()
    assert torch.count_nonzero(layer.U.grad) == 0


def test_idmlp_leaves_identity_after_a_step():
    mlp = LowRankIdentityMLP(8, 3)
    opt = torch.optim.SGD(mlp.parameters(), lr=0.1)
    z = torch.randn(5, 8)
    (mlp(z) * torch.randn(5, 8)).sum().backward()
    opt.step()
    assert not torch.equal(mlp(z), z)


def test_film_modes_give_different_outputs():
    layer = LowRankLinear(6, 2, n_modes=3)
    z = torch.randn(4, 6)
    with torch.no_grad():
        layer.U.normal_()
        # Mode 0 keeps the defaults (scale 1, shift 0), so it matches "no mode".
        assert torch.equal(layer(z, mode=0), layer(z))
        layer.scale.weight[1] = 2.0
        layer.shift.weight[2] = 0.5
    out0, out1, out2 = (layer(z, mode=m) for m in range(3))
    assert not torch.allclose(out0, out1)
    assert not torch.allclose(out0, out2)
    assert not torch.allclose(out1, out2)
    # Check the FiLM formula for mode 1 by hand.
    a = (z @ layer.V.T @ layer.U.T + layer.b) * 2.0
    torch.testing.assert_close(out1, z + a.clamp(min=0))


def test_film_shift_alone_differs_at_init():
    mlp = LowRankIdentityMLP(6, 2, n_modes=2)
    with torch.no_grad():
        mlp.layers[0].shift.weight[1] = 1.0
    z = torch.randn(3, 6)
    assert torch.equal(mlp(z, mode=0), z)
    torch.testing.assert_close(mlp(z, mode=1), z + 1.0)


def test_xavier_init_has_no_residual():
    layer = LowRankLinear(10, 4, init="xavier")
    assert torch.count_nonzero(layer.U) == layer.U.numel()
    assert layer.U.abs().max() <= math.sqrt(2) * math.sqrt(6 / (4 + 10))
    assert layer.V.abs().max() <= math.sqrt(6 / (4 + 10))
    z = torch.randn(7, 10)
    out = layer(z)
    assert (out >= 0).all()
    torch.testing.assert_close(out, (z @ layer.V.T @ layer.U.T).clamp(min=0))
    mlp = LowRankIdentityMLP(10, 4, init="xavier")
    assert not torch.allclose(mlp(z), z)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="'id'.*'xavier'"):
        LowRankLinear(4, 2, init="zeros")
    with pytest.raises(ValueError, match="'id'.*'xavier'"):
        LowRankIdentityMLP(4, 2, init="orthogonal")
    with pytest.raises(ValueError):
        LowRankIdentityMLP(4, 2, n_hidden=-1)
    with pytest.raises(ValueError, match="n_modes"):
        LowRankLinear(4, 2)(torch.randn(2, 4), mode=0)
    with pytest.raises(IndexError):
        LowRankLinear(4, 2, n_modes=2)(torch.randn(2, 4), mode=2)


def test_parameter_count_matches_spec_formula():
    d, r, n_modes = 20, 6, 3
    mlp = LowRankIdentityMLP(d, r, n_hidden=1, n_modes=n_modes)
    n_params = sum(p.numel() for p in mlp.parameters())
    assert n_params == 2 * (2 * d * r + d + 2 * n_modes * d)
    assert set(dict(mlp.named_parameters())) == {
        f"layers.{i}.{name}" for i in range(2) for name in ("U", "V", "b", "scale.weight", "shift.weight")
    }
