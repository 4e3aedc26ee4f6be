"""Every family of the architecture table on a tiny random model built from its HF config.

For each: the default edited weights are the paper's (docs/algorithm.md §4.1), the captured factors
reproduce the true gradient of every edited weight, and one MEND training step and one edit (MEND and FT)
run on batches of the model's own layout (decoder-only, encoder-decoder, binary classifier).
"""

import pytest
import torch

from mendlight.data import EditDataModule, EditRecord, LocalityItem
from mendlight.data.batch import model_inputs
from mendlight.editors import FT, MEND
from mendlight.losses import binary_as_tokens, masked_nll
from mendlight.metrics import token_nll
from mendlight.models.arch import is_conv1d, model_kind, resolve_edit_params
from mendlight.models.factors import FactorCapture
from mendlight.models.functional import model_logits, state_fingerprint
from mendlight.models.loading import load_base_model
from mendlight.models.tiny import TINY_MODELS


def _llama_like(blocks="model.layers"):
    return [f"{blocks}.{i}.mlp.{w}_proj.weight" for i in (1, 2, 3) for w in ("gate", "up", "down")]


def _gpt(*weights):
    return [f"transformer.h.{i}.mlp.{w}.weight" for i in (1, 2, 3) for w in weights]


def _t5(wi):
    return [
        f"{stack}.block.{i}.layer.{layer}.DenseReluDense.{w}.weight"
        for stack, layer in (("encoder", 1), ("decoder", 2))
        for i in (2, 3)
        for w in (wi, "wo")
    ]


#: Tiny model → (layout, default edited weights). Tiny models have 4 blocks (4 encoder + 4 decoder).
EXPECTED = {
    "llama": ("causal", _llama_like()),
    "qwen2": ("causal", _llama_like()),
    "mistral": ("causal", _llama_like()),
    "gemma": ("causal", _llama_like()),
    "gpt2": ("causal", _gpt("c_fc", "c_proj")),
    "gpt_neo": ("causal", _gpt("c_fc", "c_proj")),
    "gptj": ("causal", _gpt("fc_in", "fc_out")),
    "t5": ("seq2seq", _t5("wi")),  # T5 v1.0: one input projection
    "t5-v1_1": ("seq2seq", _t5("wi_0")),  # T5 v1.1 is gated: wi_0 is edited, wi_1 is not
    "bart": (
        "seq2seq",
        [f"model.{s}.layers.{i}.fc{j}.weight" for s in ("encoder", "decoder") for i in (2, 3) for j in "12"],
    ),
    "bert": (
        "classifier",
        [f"bert.encoder.layer.{i}.{m}.dense.weight" for i in (1, 2, 3) for m in ("intermediate", "output")],
    ),
}


def test_every_tiny_model_is_covered():
    assert set(EXPECTED) == set(TINY_MODELS)


def _records(kind: str, n: int = 2) -> list[EditRecord]:
    if kind == "classifier":
        return [
            EditRecord(
                prompt=f"Claim number {i} is right.",
                target_new="true",
                target_true="false",
                rephrases=[f"It holds that claim {i} is right."],
                locality=[LocalityItem(f"Another claim {i}.", "false")],
                id=f"c{i}",
                task="classification",
            )
            for i in range(n)
        ]
    return [
        EditRecord(
            prompt=f"The capital of Country{i} is",
            target_new=f"City{'x' * i}",
            target_true="Old",
            rephrases=[f"Country{i}'s capital:"],
            locality=[LocalityItem(f"The sky over {i} is", "blue")],
            id=f"r{i}",
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layout_and_default_edited_weights(name):
    model = load_base_model(f"tiny-random-{name}")
    kind, names = EXPECTED[name]
    assert model_kind(model.config) == kind
    assert resolve_edit_params(model) == names
    assert all(is_conv1d(model, n) == (name == "gpt2") for n in names)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_factors_reproduce_the_gradient_of_every_edited_weight(name):
    ref = f"tiny-random-{name}"
    model = load_base_model(ref)
    names = resolve_edit_params(model)
    dm = EditDataModule(tokenizer=ref, n_loc=1, max_length=48)
    rows = dm.make_batch(_records(EXPECTED[name][0]), train=False)["edit"]  # two rows of different lengths
    leaves = {n: model.get_parameter(n).detach().clone().requires_grad_(True) for n in names}
    with FactorCapture(model, names) as cap:
        cap.backward(masked_nll(model_logits(model, model_inputs(rows), leaves), rows["labels"]))
    loss = masked_nll(model_logits(model, model_inputs(rows), leaves), rows["labels"])
    true_grads = torch.autograd.grad(loss, list(leaves.values()))
    for n, grad in zip(names, true_grads, strict=True):
        u, delta = cap.factors(n)
        rebuilt = torch.einsum("bi,bj->ij" if is_conv1d(model, n) else "bi,bj->ji", u, delta)
        assert grad.abs().sum() > 0, n
        assert torch.allclose(rebuilt, grad, atol=1e-6, rtol=1e-4), n


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_mend_training_step_and_one_edit(name):
    ref = f"tiny-random-{name}"
    kind = EXPECTED[name][0]
    torch.manual_seed(0)
    mend = MEND(base_model=ref, rank=4, edit_lr=1e-2, n_samples=1, sample_tokens=2)
    mend.log_dict = mend.log = lambda *a, **k: None
    dm = EditDataModule(tokenizer=ref, n_loc=1, max_length=48)
    before = state_fingerprint(mend.base)
    mend.train()
    loss = mend.training_step(dm.make_batch(_records(kind), train=True), 0)
    loss.backward()
    assert torch.isfinite(loss) and mend.alpha.grad.abs().sum() > 0
    assert all(int(t.u_norm.count) > 0 for t in mend.transforms.values())
    assert all(p.grad is None for p in mend.base.parameters())

    mend.eval()
    batch = dm.make_batch(_records(kind, 1), train=False)
    out = mend.evaluate_batch(batch)
    rows = batch["edit"]
    width = 1 if kind == "classifier" else rows["labels"].shape[1]
    assert out.post_edit.pred.shape == out.post_edit.logp.shape == (1, width)
    assert out.post_loc.pred.shape[0] == batch["loc"]["input_ids"].shape[0]
    deltas = mend._last_deltas
    assert set(deltas) == set(mend.edit_names)
    for n, d in deltas.items():
        assert d.shape == mend.base.get_parameter(n).shape and d.abs().sum() > 0, n
    unedited = token_nll(*binary_as_tokens(mend.logits([rows])[0], rows["labels"]))[0]
    assert float(out.post_edit.nll()[0]) != float(unedited)  # the edit changed the outputs
    assert len(mend.greedy_outputs(rows, deltas)) == 1
    assert state_fingerprint(mend.base) == before


@pytest.mark.parametrize("name", ["gpt2", "t5-v1_1", "bart", "bert"])
def test_ft_reaches_the_target(name):
    ref = f"tiny-random-{name}"
    ft = FT(base_model=ref, edit_lr=1e-2, max_steps=100, ft_optimizer="adam")
    ft.eval()
    batch = EditDataModule(tokenizer=ref, n_loc=1).make_batch(_records(EXPECTED[name][0], 1), train=False)
    out = ft.evaluate_batch(batch)
    assert bool(out.post_edit.correct().all())
    assert 1 <= ft.last_steps < 100


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_seq2seq_locality_kl_and_metrics_use_the_decoder_mask(name):
    from mendlight.data.batch import score_mask
    from mendlight.losses import kl_locality
    from mendlight.metrics import token_nll

    ref = f"tiny-random-{name}"
    model = load_base_model(ref)
    records = [
        EditRecord(
            prompt="Q",
            target_new="x",
            locality=[LocalityItem("A short question?", "a"), LocalityItem("Another?", "a longer answer")],
        )
    ]
    loc = EditDataModule(tokenizer=ref, n_loc=2).make_batch(records, train=False)["loc"]
    mask = score_mask(loc)
    assert torch.equal(mask, loc["decoder_attention_mask"]) and not mask[0].all()  # row 0 is padded
    pre = model_logits(model, model_inputs(loc))
    post = pre + 0.3 * torch.randn(pre.shape, generator=torch.Generator().manual_seed(0))
    noisy_pads = post.clone()
    noisy_pads[~mask.bool()] += 50.0  # padded decoder positions must not count
    torch.testing.assert_close(kl_locality(pre, post, mask), kl_locality(pre, noisy_pads, mask))
    assert kl_locality(pre, post, mask) > 0
    torch.testing.assert_close(token_nll(post, loc["labels"])[0], token_nll(noisy_pads, loc["labels"])[0])
