"""k separate MEND edits in one vectorised pass equal k separate single edits (mendlight.models.rowwise)."""

from __future__ import annotations

import pytest
import torch

from mendlight.editors import MEND
from mendlight.errors import ConfigError
from mendlight.models.functional import state_fingerprint
from mendlight.models.rowwise import pad_by_row
from tests.editors.helpers import rows

EDITS = [
    ("The capital of France is", "Rome"),
    ("The currency of Japan is the", "Euro"),
    ("Paris is a city in", "Peru"),
]
# rows of each edit: (edit index, prompt, target)
POST = [
    (0, "France's capital city is", "Rome"),
    (2, "The city of Paris lies in", "Peru"),
    (1, "Japan pays with the", "Euro"),
    (0, "The river of London is the", "Thames"),
    (1, "The capital of Italy is", "Rome"),
]


def test_pad_by_row_keeps_order_and_pads_with_zeros():
    values = torch.arange(12.0).reshape(6, 2).requires_grad_(True)
    row = torch.tensor([0, 0, 2, 2, 2, 0])
    out = pad_by_row(values, row, 4)
    assert out.shape == (4, 3, 2)
    assert out[0].tolist() == [[0, 1], [2, 3], [10, 11]]
    assert out[2].tolist() == [[4, 5], [6, 7], [8, 9]]
    assert out[1].abs().sum() == 0 and out[3].abs().sum() == 0
    out.sum().backward()
    assert torch.equal(values.grad, torch.ones_like(values))


def _trained_mend(base: str) -> MEND:
    """A tiny MEND whose normalisation statistics hold a few edits, in eval mode (statistics fixed)."""
    torch.manual_seed(0)
    mend = MEND(base_model=base, rank=4, edit_lr=0.1)
    mend.train()
    for prompt, target in EDITS:
        mend.edit(rows([(prompt, target)]))
    mend.eval()
    # a non-trivial editor: perturb the networks and the step sizes away from their initialisation
    with torch.no_grad():
        for p in mend.transforms.parameters():
            p.add_(0.05 * torch.randn_like(p))
        mend.alpha.mul_(torch.tensor([1.0, 2.0, 0.5] * (len(mend.alpha) // 3 + 1))[: len(mend.alpha)])
    return mend


@pytest.mark.parametrize("base", ["tiny-random-llama", "tiny-random-gpt2"])
def test_rowwise_logits_and_meta_gradients_equal_separate_edits(base):
    mend = _trained_mend(base)
    before = state_fingerprint(mend.base)
    edit_rows = rows(EDITS)
    post_rows = rows([(p, t) for _, p, t in POST])
    owner = torch.tensor([e for e, _, _ in POST])
    weights = torch.randn(
        *post_rows["input_ids"].shape, mend.vocab_size, generator=torch.Generator().manual_seed(1)
    )

    params = [p for p in mend.parameters() if p.requires_grad]
    edits = mend.edit_rowwise(edit_rows)
    with edits.applied(mend.base, owner):
        logits = mend.forward_params(post_rows, None)
    grads = torch.autograd.grad((logits * weights).sum(), params)

    expected = torch.zeros_like(logits)
    expected_grads = [torch.zeros_like(p) for p in params]
    for i, pair in enumerate(EDITS):
        deltas = mend.edit(rows([pair]))  # edit i alone, as a single edit
        for name, delta in deltas.items():
            torch.testing.assert_close(edits.delta(name, i, mend.conv1d[name]), delta, atol=1e-5, rtol=1e-4)
        mine = (owner == i).nonzero().flatten()
        sub = {k: v[mine] for k, v in post_rows.items()}
        out = mend.forward_rows(sub, deltas)
        expected[mine] = out.detach()
        for acc, g in zip(
            expected_grads,
            torch.autograd.grad((out * weights[mine]).sum(), params, allow_unused=True),
            strict=True,
        ):
            if g is not None:
                acc += g
    torch.testing.assert_close(logits, expected, atol=2e-5, rtol=1e-4)
    assert sum(float(e.norm()) for e in expected_grads) > 0
    for g, e in zip(grads, expected_grads, strict=True):  # equal up to float32 summation order
        assert (g - e).norm() <= 1e-4 * e.norm() + 1e-8
    assert state_fingerprint(mend.base) == before  # no weight was written
    # the hooks are gone: a plain forward is the unedited model again
    torch.testing.assert_close(mend.forward_params(post_rows, None), mend.forward_rows(post_rows, None))


def test_only_rowwise_editors_accept_independent_edits():
    from mendlight.editors import FT

    with pytest.raises(ConfigError, match="independent_edits"):
        FT(base_model="tiny-random-llama", independent_edits=True)
    assert MEND(base_model="tiny-random-llama", rank=4, independent_edits=True).hparams.independent_edits


def test_fit_with_independent_edits_trains_k_edits_per_step_and_validates_one_at_a_time(
    tmp_path, monkeypatch, no_argv
):
    from pathlib import Path

    from mendlight.cli import main

    monkeypatch.chdir(tmp_path)
    seen = {"train": [], "val": []}
    training_step, validation_step = MEND.training_step, MEND.validation_step
    edit_rowwise = MEND.edit_rowwise

    def train_spy(self, batch, batch_idx):
        seen["train"].append(int(batch["edit"]["input_ids"].shape[0]))
        return training_step(self, batch, batch_idx)

    def val_spy(self, batch, batch_idx):
        seen["val"].append(int(batch["edit"]["input_ids"].shape[0]))
        return validation_step(self, batch, batch_idx)

    def rowwise_spy(self, *args, **kwargs):
        seen.setdefault("rowwise", 0)
        seen["rowwise"] += 1
        return edit_rowwise(self, *args, **kwargs)

    monkeypatch.setattr(MEND, "training_step", train_spy)
    monkeypatch.setattr(MEND, "validation_step", val_spy)
    monkeypatch.setattr(MEND, "edit_rowwise", rowwise_spy)
    config = Path(__file__).resolve().parents[2] / "configs" / "tiny_debug.yaml"
    main(
        ["fit", "-c", str(config), "--model.init_args.independent_edits", "true"]
        + ["--data.init_args.n_edits", "3", "--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]
    )
    assert seen["train"] == [3, 3] and seen["rowwise"] == 2
    assert seen["val"] and set(seen["val"]) == {1}  # evaluation edits one record at a time
