import pytest
import torch

from mendlight.editors import MEND
from mendlight.models.functional import state_fingerprint
from tests.editors.helpers import FACT


def make(**kw):
    kw.setdefault("rank", 8)
    return MEND(base_model="tiny-random-llama", **kw)


def filled(mend: MEND) -> MEND:
    """The editor in eval mode after one training step (which fills its Welford statistics)."""
    torch.manual_seed(0)
    mend.train()
    mend.log_dict = mend.log = lambda *a, **k: None
    mend.training_step(FACT, 0)
    mend.eval()
    return mend


def test_edit_at_init_without_norm_is_minus_alpha_times_the_true_gradient():
    torch.manual_seed(0)
    mend = make(norm=False, edit_lr=0.5)
    mend.eval()
    names = mend.edit_names
    leaves = {n: mend.base.get_parameter(n).detach().requires_grad_(True) for n in names}
    from torch.func import functional_call

    from mendlight.losses import masked_nll

    edit = FACT["edit"]
    logits = functional_call(
        mend.base, leaves, kwargs={"input_ids": edit["input_ids"], "attention_mask": edit["attention_mask"]}
    ).logits
    grads = torch.autograd.grad(masked_nll(logits, edit["labels"]), list(leaves.values()))
    deltas = mend.edit(edit)
    for name, grad in zip(names, grads, strict=True):
        assert torch.allclose(deltas[name], -0.5 * grad, atol=1e-6, rtol=1e-4), name


def test_training_step_trains_only_editor_and_leaves_base_untouched():
    mend = make()
    before = state_fingerprint(mend.base)
    mend.train()
    mend.log_dict = mend.log = lambda *a, **k: None
    loss = mend.training_step(FACT, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert mend.alpha.grad is not None and mend.alpha.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mend.transforms.parameters())
    assert all(p.grad is None for p in mend.base.parameters())
    assert state_fingerprint(mend.base) == before
    # the Welford statistics saw the edit rows (training mode)
    assert all(int(t.u_norm.count) > 0 for t in mend.transforms.values())


def test_optimizer_has_editor_group_and_alpha_group_only():
    mend = make(lr_lr=3e-5)
    opt = mend.configure_optimizers()
    groups = opt.param_groups
    assert len(groups) == 2
    assert groups[1]["params"] == [mend.alpha] and groups[1]["lr"] == 3e-5
    base_ids = {id(p) for p in mend.base.parameters()}
    assert not any(id(p) in base_ids for g in groups for p in g["params"])
    n_editor = sum(p.numel() for p in mend.transforms.parameters())
    assert sum(p.numel() for p in groups[0]["params"]) == n_editor


def test_shared_networks_one_per_shape_with_modes():
    mend = make()
    assert sorted(mend.transforms.keys()) == ["32x64", "64x32"]
    by_key = {}
    for key, mode in mend.route.values():
        by_key.setdefault(key, []).append(mode)
    assert by_key == {"32x64": [0, 1, 2, 3, 4, 5], "64x32": [0, 1, 2]}  # gate+up share a shape; down alone
    assert mend.transforms["32x64"].combined_net.layers[0].scale.num_embeddings == 6
    unshared = make(shared=False)
    assert len(unshared.transforms) == len(unshared.edit_names)
    assert all(mode is None for _, mode in unshared.route.values())


@pytest.mark.parametrize(
    "variant",
    [
        dict(shared=False),
        dict(norm=False),
        dict(init="xavier"),
        dict(combine=False, x_only=True),
        dict(combine=False, delta_only=True),
        dict(combine=False, one_sided=True),
        dict(n_hidden=2),
    ],
)
def test_table6_variants_edit(variant):
    mend = make(**variant)
    mend.train()
    deltas = mend.edit(FACT["edit"])
    assert set(deltas) == set(mend.edit_names)
    assert all(torch.isfinite(d).all() and d.abs().sum() > 0 for d in deltas.values())


def test_invalid_variant_is_rejected():
    with pytest.raises(ValueError):
        make(combine=True, x_only=True)


def test_short_training_on_one_fact_makes_the_edit_succeed():

    torch.manual_seed(0)
    mend = make(rank=16, edit_lr=1e-2, c_edit=1.0)
    mend.log_dict = mend.log = lambda *a, **k: None
    mend.train()
    mend.edit(FACT["edit"])  # fill the normalisation statistics
    mend.eval()
    untrained = mend.evaluate_batch(FACT)
    assert not bool(untrained.post_equiv.correct().all())
    opt = torch.optim.Adam(mend.trainable_parameters(), lr=1e-2)
    mend.train()
    losses = []
    for _ in range(30):
        loss = mend.training_step(FACT, 0)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    # a tiny random model's tied head has a narrow logit range, so the NLL cannot fall far; success can
    assert losses[-1] < losses[0]
    mend.eval()
    trained = mend.evaluate_batch(FACT)
    assert bool(trained.post_equiv.correct().all())
    assert bool(trained.post_edit.correct().all())


def test_nonfinite_loss_is_skipped_and_counted(monkeypatch):
    mend = make()
    mend.train()
    mend.log_dict = mend.log = lambda *a, **k: None
    monkeypatch.setattr("mendlight.losses.kl_locality", lambda *a: torch.tensor(float("nan")))
    assert mend.training_step(FACT, 0) is None
    assert int(mend.skipped_steps) == 1


def test_nonfinite_gradients_skip_the_optimizer_step():
    mend = make()
    mend.log = lambda *a, **k: None
    opt = mend.configure_optimizers()
    for p in mend.trainable_parameters():
        p.grad = torch.ones_like(p)
    mend.alpha.grad[0] = float("inf")
    mend.on_before_optimizer_step(opt)
    assert all(p.grad is None for p in mend.trainable_parameters())
    assert int(mend.skipped_steps) == 1


def test_bfloat16_base_keeps_the_editor_in_float32():
    mend = MEND(base_model="tiny-random-llama", dtype="bfloat16", rank=8)
    mend.train()
    deltas = mend.edit(FACT["edit"])
    assert all(d.dtype == torch.float32 and torch.isfinite(d).all() for d in deltas.values())
    assert all(p.dtype == torch.float32 for p in mend.transforms.parameters())
    mend.eval()
    out = mend.evaluate_batch(FACT)
    assert out.post_equiv.pred.shape == FACT["equiv"]["labels"].shape
    assert torch.isfinite(out.post_equiv.logp).all() and float(out.post_equiv.nll()[0]) > 0


def test_batched_edit_is_the_sum_of_the_separate_edits():
    """Paper §5.3: k simultaneous edits sum the edits computed separately (here exactly: rows of different
    lengths, padding included, with the normalisation statistics of a training step)."""
    from tests.editors.helpers import rows

    mend = filled(make(edit_lr=0.1))
    pairs = [
        ("The capital of France is", "Rome"),
        ("Water boils at", "ninety degrees"),
        ("The sky is", "green"),
    ]
    together = mend.edit(rows(pairs))
    alone = [mend.edit(rows([pair])) for pair in pairs]
    for name in mend.edit_names:
        summed = sum(d[name] for d in alone)
        torch.testing.assert_close(together[name], summed, atol=1e-6, rtol=1e-4)
        assert float(together[name].detach().abs().max()) > 0


def test_lm_chunk_edits_in_chunks_with_the_same_result_outside_training():
    from mendlight.errors import ConfigError
    from tests.editors.helpers import rows

    mend = filled(make(edit_lr=0.1))
    edits = rows(
        [(f"Fact number {i} is about", word) for i, word in enumerate(["red", "tall", "cold", "new", "far"])]
    )
    whole = mend.edit(edits)
    passes = []
    mend.capture_edit_factors = lambda r, h=None, f=mend.capture_edit_factors: (
        passes.append(len(r["labels"])) or f(r, h)
    )
    assert mend.hparams.lm_chunk == 32  # the default: MALMEN's
    for chunk in (1, 2, None):
        passes.clear()
        mend.hparams.lm_chunk = chunk
        chunked = mend.edit(edits)
        assert passes == {1: [1] * 5, 2: [2, 2, 1], None: [5]}[chunk]  # one forward/backward per chunk
        for name in mend.edit_names:
            torch.testing.assert_close(chunked[name], whole[name], atol=1e-6, rtol=1e-4)
    mend.train()  # training edits run in one pass: the statistics take the whole batch first
    passes.clear()
    mend.edit(edits)
    assert passes == [5]
    with pytest.raises(ConfigError, match="MEND: lm_chunk must be at least 1, got 0"):
        make(lm_chunk=0)
