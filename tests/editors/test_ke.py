import pytest
import torch

from mendlight.data import EditDataModule, EditRecord, LocalityItem
from mendlight.editors import KE
from mendlight.editors.ke import ConditionedParameter, LSTMConditioner
from mendlight.models.functional import state_fingerprint

TINY = "tiny-random-llama"


def _record(i, target="Rome"):
    return EditRecord(
        prompt=f"The capital of Country{i} is",
        target_new=target,
        target_true="Paris",
        rephrases=[f"Country{i}'s capital:"],
        locality=[LocalityItem(f"The sky of {i} is", "blue")],
        id=f"r{i}",
    )


def make():
    ke = KE(base_model=TINY, hidden_dim=16, condition_dim=12)
    ke.log_dict = ke.log = lambda *a, **k: None
    return ke


def test_head_output_is_the_masked_rank1_transform():
    torch.manual_seed(0)
    head = ConditionedParameter((3, 5), condition_dim=4, hidden_dim=6, max_scale=2.0)
    c, grad = torch.randn(4), torch.randn(3, 5)
    out = head.net(c)
    col_a, row_a, col_b, row_b, norm = out[:5], out[5:8], out[8:13], out[13:16], out[16]
    mask = torch.outer(torch.softmax(row_a, 0), col_a)
    shift = torch.outer(torch.softmax(row_b, 0), col_b)
    expected = 2.0 * torch.sigmoid(norm) * (grad * mask + shift)
    torch.testing.assert_close(head(c, grad), expected)
    assert torch.linalg.matrix_rank(mask) == 1 and torch.linalg.matrix_rank(shift) == 1


def test_conditioner_masks_padding_and_starts_from_the_base_embeddings():
    torch.manual_seed(0)
    emb = torch.randn(10, 4)
    cond = LSTMConditioner(emb, hidden_dim=3, condition_dim=5, padding_idx=0)
    assert torch.equal(cond.embedding.weight.detach(), emb) and cond.embedding.weight.requires_grad
    ids = torch.tensor([[4, 5, 6, 0, 0], [4, 5, 6, 7, 8]])
    mask = (ids != 0).long()
    out = cond(ids, mask)
    alone = cond(ids[:1, :3], mask[:1, :3])
    torch.testing.assert_close(out[0], alone[0])  # the padded positions change nothing
    assert out.shape == (2, 5) and out.abs().max() < 1


def test_training_step_trains_conditioner_and_heads_only():
    ke = make()
    dm = EditDataModule(tokenizer=TINY, n_loc=1)
    before = state_fingerprint(ke.base)
    ke.train()
    loss = ke.training_step(dm.make_batch([_record(0)], train=True), 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert ke.conditioner.lstm.weight_ih_l0.grad.abs().sum() > 0
    assert all(
        any(p.grad is not None and p.grad.abs().sum() > 0 for p in h.parameters()) for h in ke.heads.values()
    )
    assert all(p.grad is None for p in ke.base.parameters()) and state_fingerprint(ke.base) == before
    names = {n for n, _ in ke.named_parameters() if not n.startswith("base.")}
    assert {p for p in ke.trainable_parameters()} == {p for n, p in ke.named_parameters() if n in names}


def test_condition_changes_the_edit():
    ke = make()
    ke.eval()
    dm = EditDataModule(tokenizer=TINY, n_loc=1)
    a = dm.make_batch([_record(0, "Rome")], train=False)
    b = dm.make_batch([_record(0, "Rome")], train=False)
    b["cond"] = dm.make_batch([_record(0, "Oslo")], train=False)["cond"]  # same edit rows, other condition
    da, db = ke.edit(a["edit"], cond=a["cond"]), ke.edit(b["edit"], cond=b["cond"])
    assert set(da) == set(ke.edit_names)
    assert any(not torch.allclose(da[n], db[n]) for n in da)
    assert all(da[n].shape == ke.base.get_parameter(n).shape for n in da)


def test_batched_edits_are_refused():
    ke = make()
    dm = EditDataModule(tokenizer=TINY, n_loc=1)
    batch = dm.make_batch([_record(0), _record(1)], train=False)
    with pytest.raises(ValueError, match="one fact at a time.*n_edits"):
        ke.evaluate_batch(batch)
