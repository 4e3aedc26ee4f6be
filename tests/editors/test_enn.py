import pytest
import torch

from mendlight.editors import ENN
from mendlight.editors.enn import top_block_params
from mendlight.losses import masked_nll
from mendlight.models.functional import model_logits, state_fingerprint
from mendlight.models.loading import load_base_model
from tests.editors.helpers import FACT


def make(**kw):
    enn = ENN(base_model="tiny-random-llama", **kw)
    enn.log_dict = enn.log = lambda *a, **k: None
    return enn


def test_trains_the_top_blocks_from_the_lowest_edited_one():
    model = load_base_model("tiny-random-llama")  # 4 blocks; the last 3 are edited
    names = top_block_params(model, [f"model.layers.{i}.mlp.down_proj.weight" for i in (2, 3)])
    assert names and all(n.startswith(("model.layers.2.", "model.layers.3.")) for n in names)
    assert {n for n, _ in model.named_parameters() if n.startswith("model.layers.3.")} <= set(names)
    t5 = load_base_model("tiny-random-t5")  # encoder and decoder groups: blocks 2-3 of each
    t5_names = top_block_params(
        t5,
        [
            "encoder.block.2.layer.1.DenseReluDense.wi.weight",
            "decoder.block.3.layer.2.DenseReluDense.wo.weight",
        ],
    )
    assert any(n.startswith("encoder.block.2.") for n in t5_names) and any(
        n.startswith("decoder.block.3.") for n in t5_names
    )
    assert not any(n.startswith(("encoder.block.1.", "decoder.block.2.")) for n in t5_names)


def test_edit_at_init_is_one_sgd_step_with_the_inner_lr():
    enn = make(edit_lr=0.5)
    enn.eval()
    edit = FACT["edit"]
    leaves = {n: enn.base.get_parameter(n).detach().requires_grad_(True) for n in enn.edit_names}
    inputs = {"input_ids": edit["input_ids"], "attention_mask": edit["attention_mask"]}
    grads = torch.autograd.grad(
        masked_nll(model_logits(enn.base, inputs, leaves), edit["labels"]), list(leaves.values())
    )
    deltas = enn.edit(edit)
    assert set(deltas) == set(enn.trained_names)
    for name, grad in zip(enn.edit_names, grads, strict=True):
        assert torch.allclose(deltas[name], -0.5 * grad, atol=1e-6, rtol=1e-4), name
    others = [n for n in enn.trained_names if n not in enn.edit_names]
    assert others and all(float(deltas[n].detach().abs().max()) == 0.0 for n in others)
    assert all(float(d.detach().abs().max()) == 0.0 for d in enn.pre_edit_deltas().values())  # θ = θ₀ at init


@pytest.mark.parametrize("first_order", [False, True])
def test_training_step_trains_theta_and_inner_lrs(first_order):
    enn = make(first_order=first_order)
    before = state_fingerprint(enn.base)
    opt = enn.configure_optimizers()
    enn.train()
    loss = enn.training_step(FACT, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert enn.inner_lr.grad is not None and enn.inner_lr.grad.abs().sum() > 0
    assert sum(float(p.grad.abs().sum()) for p in enn.theta.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in enn.base.parameters())
    opt.step()
    assert any(float(d.abs().max()) > 0 for d in enn.pre_edit_deltas().values())  # θ moved away from θ₀
    assert state_fingerprint(enn.base) == before  # ... the frozen base did not


def test_second_order_differs_from_first_order():
    grads = {}
    for first_order in (False, True):
        torch.manual_seed(0)
        enn = make(first_order=first_order, edit_lr=0.5)
        enn.train()
        enn.training_step(FACT, 0).backward()
        grads[first_order] = torch.cat(
            [p.grad.flatten() for p in enn.theta.parameters() if p.grad is not None]
        )
    assert not torch.allclose(grads[False], grads[True])


def test_checkpoint_holds_theta_and_inner_lrs_but_no_base_weights():
    enn = make()
    ckpt = {"state_dict": enn.state_dict()}
    enn.on_save_checkpoint(ckpt)
    keys = set(ckpt["state_dict"])
    assert "inner_lr" in keys and any(k.startswith("theta.") for k in keys)
    assert not any(k.startswith("base.") for k in keys)


@pytest.mark.parametrize("name", ["gpt2", "t5-v1_1", "bart", "bert"])
def test_training_step_and_edit_on_every_layout(name):
    from mendlight.data import EditDataModule
    from tests.models.test_architectures import EXPECTED, _records

    ref = f"tiny-random-{name}"
    enn = ENN(base_model=ref)
    enn.log_dict = enn.log = lambda *a, **k: None
    dm = EditDataModule(tokenizer=ref, n_loc=1, max_length=48)
    enn.train()
    loss = enn.training_step(dm.make_batch(_records(EXPECTED[name][0]), train=True), 0)
    loss.backward()
    assert torch.isfinite(loss) and enn.inner_lr.grad.abs().sum() > 0
    enn.eval()
    out = enn.evaluate_batch(dm.make_batch(_records(EXPECTED[name][0], 1), train=False))
    assert torch.isfinite(out.post_edit.logp).all() and float(out.post_edit.nll()[0]) > 0
    assert out.latency_s > 0


def test_batched_edit_is_the_sum_of_the_separate_edits():
    """One inner step on k edits moves θ by the sum of the k separate steps (each edit's gradient at its own
    scale, not shrunk by 1/k)."""
    from tests.editors.helpers import rows

    torch.manual_seed(0)
    enn = make()
    enn.eval()
    pairs = [
        ("The capital of France is", "Rome"),
        ("Water boils at", "ninety degrees"),
        ("The sky is", "green"),
    ]
    with torch.no_grad():
        together = enn.edit(rows(pairs))
        alone = [enn.edit(rows([pair])) for pair in pairs]
    for name in enn.edit_names:
        torch.testing.assert_close(together[name], sum(d[name] for d in alone), atol=1e-6, rtol=1e-4)
        assert float(together[name].detach().abs().max()) > 0


def test_lm_chunk_sums_the_gradients_of_chunks_outside_training():
    from mendlight.errors import ConfigError
    from tests.editors.helpers import five_edits

    enn = make(edit_lr=0.5, n_edit_steps=2)
    edits = five_edits()
    passes = []
    forward = enn.forward_params
    enn.forward_params = lambda r, p, h=None: passes.append(len(r["labels"])) or forward(r, p, h)
    enn.eval()
    enn.hparams.lm_chunk = None
    whole = enn.edit(edits)
    assert passes == [5, 5]
    for chunk, per_step in ((1, [1] * 5), (2, [2, 2, 1])):
        passes.clear()
        enn.hparams.lm_chunk = chunk
        chunked = enn.edit(edits)
        assert passes == per_step * 2
        for name in enn.edit_names:
            torch.testing.assert_close(chunked[name], whole[name], atol=1e-6, rtol=1e-4)
        changed = [float((whole[n] - enn.pre_edit_deltas()[n]).abs().max()) for n in enn.edit_names]
        assert min(changed) > 0
    enn.train()  # a training edit is differentiated through: one pass
    passes.clear()
    enn.edit(edits)
    assert passes == [5, 5]
    with pytest.raises(ConfigError, match="ENN: lm_chunk must be at least 1, got 0"):
        make(lm_chunk=0)


def test_a_bfloat16_base_is_edited_under_no_grad_as_evaluation_runs_it():
    enn = make(dtype="bfloat16", edit_lr=0.5)
    enn.eval()
    with torch.no_grad():  # Lightning's validation and test loops; evaluate_batch's edit
        deltas = enn.edit(FACT["edit"])
    pre = enn.pre_edit_deltas()
    moved = [float((deltas[n].float() - pre[n].float()).abs().max()) for n in enn.edit_names]
    assert all(torch.isfinite(d).all() for d in deltas.values()) and min(moved) > 0
