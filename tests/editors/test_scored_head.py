"""The training step computes logits only where its losses read them, and gets the same losses."""

from __future__ import annotations

import pytest
import torch

from mendlight.data.batch import score_mask
from mendlight.editors.rows import RowStack
from mendlight.losses import edit_nll, kl_locality, masked_nll, packed_edit_nll, sequence_success
from mendlight.models.scored_head import scored_positions_only
from tests.editors.test_every_editor import EDITORS, _setup
from tests.models.test_architectures import _records


def _reference_losses(editor, batch):
    """The step's losses from full-size logits (every position through the head), as before packing."""
    equiv, loc = batch["equiv"], batch["loc"]
    stack = RowStack(editor, {"edit": batch["edit"], "equiv": equiv, "loc": loc})
    loc_rows, loc_hidden = stack.select("loc")
    with torch.no_grad():
        (pre_loc,) = stack.split(editor.forward_rows(loc_rows, None, loc_hidden), "loc")
    edit_rows, edit_hidden = stack.select("edit")
    deltas = editor.edit(edit_rows, hidden=edit_hidden)
    post_rows, post_hidden = stack.select("equiv", "loc")
    post_equiv, post_loc = stack.split(editor.forward_rows(post_rows, deltas, post_hidden), "equiv", "loc")
    es = sequence_success(post_equiv, equiv["labels"]).float().mean()
    return masked_nll(post_equiv, equiv["labels"]), kl_locality(pre_loc, post_loc, score_mask(loc)), es


@pytest.mark.parametrize("layout", ["llama", "gpt2", "t5-v1_1", "bart", "bert"])
@pytest.mark.parametrize("k", [1, 3])
def test_packed_step_losses_equal_full_logits(layout, k, tmp_path):
    editor, dm, kind = _setup(layout, "MEND", tmp_path)
    editor.train()
    editor.edit(dm.make_batch(_records(kind, 2), train=True)["edit"])  # fill the statistics
    editor.eval()  # statistics fixed: both computations see the same normalisation
    logged = {}
    editor.log_dict = lambda values, **kwargs: logged.update(values)
    batch = dm.make_batch(_records(kind, k), train=True)
    torch.manual_seed(0)
    with torch.no_grad():
        loss_edit, loss_loc, es = _reference_losses(editor, batch)
        editor.training_step(batch, 0)
    torch.testing.assert_close(logged["train/loss_edit"], loss_edit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logged["train/loss_loc"], loss_loc, atol=1e-6, rtol=1e-4)
    assert float(logged["train/es_equiv"]) == float(es)


def test_scored_positions_return_exactly_the_logits_at_the_mask():
    from mendlight.models.loading import load_base_model

    model = load_base_model("tiny-random-llama")
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
    mask = torch.tensor([[False, True, False, True], [True, False, False, False]])
    full = model(input_ids=ids).logits
    with scored_positions_only(model, mask):
        packed = model(input_ids=ids).logits
    assert packed.shape == (1, 3, full.shape[-1])
    torch.testing.assert_close(packed[0], full[mask])
    with pytest.raises(RuntimeError, match="do not match"), scored_positions_only(model, mask[:1]):
        model(input_ids=ids)
    assert model(input_ids=ids).logits.shape == full.shape  # the hook is gone


def test_packed_edit_nll_equals_edit_nll():
    logits = torch.randn(3, 5, 7)
    labels = torch.tensor([[-100, 2, 3, -100, -100], [-100, -100, -100, 1, 6], [-100, 4, -100, -100, -100]])
    keep = labels != -100
    packed = packed_edit_nll(logits[keep], labels[keep], keep.nonzero()[:, 0], 3)
    torch.testing.assert_close(packed, edit_nll(logits, labels))


def test_every_editor_still_trains_a_step_with_packed_logits(tmp_path):
    for name in ("ENN", "KE", "MEND"):
        editor, dm, kind = _setup("gpt2", name, tmp_path)
        editor.train()
        loss = editor.training_step(dm.make_batch(_records(kind, 1), train=True), 0)
        assert torch.isfinite(loss)
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in editor.trainable_parameters())
    assert set(EDITORS) >= {"ENN", "KE", "MEND"}


def test_loc_kl_answer_compares_only_the_answer_tokens(tmp_path):
    from mendlight.editors import MEND
    from mendlight.errors import ConfigError

    editor, dm, kind = _setup("llama", "MEND", tmp_path)
    batch = dm.make_batch(_records(kind, 2), train=True)
    loc = batch["loc"]
    assert torch.equal(editor.kl_positions(loc), loc["attention_mask"].bool())  # the default: the input
    editor.hparams.loc_kl = "answer"
    answer = editor.kl_positions(loc)
    assert torch.equal(answer, loc["labels"] != -100) and answer.sum() < loc["attention_mask"].sum()
    editor.train()
    editor.edit(dm.make_batch(_records(kind, 2), train=True)["edit"])
    editor.eval()
    logged = {}
    editor.log_dict = lambda values, **kwargs: logged.update(values)
    with torch.no_grad():
        equiv = batch["equiv"]
        stack = RowStack(editor, {"edit": batch["edit"], "equiv": equiv, "loc": loc})
        loc_rows, hidden = stack.select("loc")
        (pre,) = stack.split(editor.forward_rows(loc_rows, None, hidden), "loc")
        deltas = editor.edit(stack.select("edit")[0], hidden=stack.select("edit")[1])
        post_rows, post_hidden = stack.select("equiv", "loc")
        _, post = stack.split(editor.forward_rows(post_rows, deltas, post_hidden), "equiv", "loc")
        editor.training_step(batch, 0)
    torch.testing.assert_close(logged["train/loss_loc"], kl_locality(pre, post, answer), atol=1e-6, rtol=1e-4)
    with pytest.raises(ConfigError, match="loc_kl"):
        MEND(base_model="tiny-random-llama", rank=4, loc_kl="everywhere")


def test_nothing_scored_gives_empty_logits_and_a_step_without_locality_rows_trains(tmp_path):
    from mendlight.data.module import EditDataModule

    editor, dm, kind = _setup("llama", "MEND", tmp_path)
    batch = dm.make_batch(_records(kind, 1), train=True)
    loc = batch["loc"]
    nothing = torch.zeros_like(loc["attention_mask"], dtype=torch.bool)
    calls = []
    empty = editor.scored_logits(loc, nothing, lambda: calls.append(1))
    assert empty.shape == (0, editor.vocab_size) and calls == []  # the model does not run at all
    no_loc = EditDataModule(dataset=str(tmp_path), tokenizer="tiny-random-llama", n_loc=0, max_length=48)
    no_loc.setup("fit")
    batch = no_loc.make_batch(_records(kind, 1), train=True)
    assert batch["loc"]["input_ids"].shape[0] == 0
    logged = {}
    editor.log_dict = lambda values, **kwargs: logged.update(values)
    editor.train()
    loss = editor.training_step(batch, 0)
    assert torch.isfinite(loss) and float(logged["train/loss_loc"].detach()) == 0.0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in editor.trainable_parameters())
