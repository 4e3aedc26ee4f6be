"""Every editor on every layout, single and batched (k simultaneous edits), from the data module's batches."""

import pytest
import torch

from mendlight.data import EditDataModule
from mendlight.editors import ENN, FT, FTKL, KE, MALMEN, MEND, Cache
from mendlight.models.functional import state_fingerprint
from tests.models.test_architectures import EXPECTED, _records

LAYOUTS = ["gpt2", "t5-v1_1", "bert"]  # decoder-only, encoder-decoder, classifier
EDITORS = {
    "MEND": lambda ref: MEND(base_model=ref, rank=4),
    "MALMEN": lambda ref: MALMEN(base_model=ref, rank=4, edit_lr=1e-2),
    "FT": lambda ref: FT(base_model=ref, edit_lr=1e-2, ft_optimizer="adam", max_steps=5),
    "FTKL": lambda ref: FTKL(base_model=ref, edit_lr=1e-2, ft_optimizer="adam", max_steps=5),
    "ENN": lambda ref: ENN(base_model=ref),
    "KE": lambda ref: KE(base_model=ref, hidden_dim=8, condition_dim=8),
    "Cache": lambda ref: Cache(base_model=ref, epsilon=1e-3),
}


def _setup(name, editor_name, tmp_path):
    from mendlight.data.records import write_records

    ref = f"tiny-random-{name}"
    kind = EXPECTED[name][0]
    for split in ("train", "val", "test"):
        write_records(tmp_path / f"{split}.jsonl", _records(kind, 3))
    dm = EditDataModule(dataset=str(tmp_path), tokenizer=ref, n_loc=1, max_length=48)
    dm.setup("test")
    torch.manual_seed(0)
    editor = EDITORS[editor_name](ref)
    editor.attach_datamodule(dm)
    editor.log_dict = editor.log = lambda *a, **k: None
    return editor, dm, kind


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("editor_name", sorted(EDITORS))
@pytest.mark.parametrize("k", [1, 2])
def test_edit_k_records_at_once(layout, editor_name, k, tmp_path):
    editor, dm, kind = _setup(layout, editor_name, tmp_path)
    batch = dm.make_batch(_records(kind, k), train=False)
    if editor_name in ("MEND", "MALMEN"):  # fill their normalisation statistics, as training does
        editor.train()
        editor.edit(dm.make_batch(_records(kind, 2), train=True)["edit"])
    editor.eval()
    before = state_fingerprint(editor.base)
    if editor_name == "KE" and k > 1:
        with pytest.raises(ValueError, match="one fact at a time"):
            editor.evaluate_batch(batch)
        return
    out = editor.evaluate_batch(batch)
    assert out.post_edit.pred.shape[0] == k and torch.isfinite(out.post_edit.logp).all()
    nll, n_tokens = out.post_edit.nll()
    assert float(nll) >= 0 and int(n_tokens) >= k  # a target token per edit at least
    assert out.post_equiv.pred.shape[0] == batch["equiv"]["input_ids"].shape[0]
    assert state_fingerprint(editor.base) == before
    if editor_name == "Cache":
        assert len(editor._last_deltas) == k
    else:
        assert set(editor._last_deltas) >= set(editor.edit_names)
        assert any(float(d.abs().sum()) > 0 for d in editor._last_deltas.values())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("editor_name", ["MEND", "MALMEN", "ENN", "KE"])
def test_trainable_editors_take_a_batched_training_step(layout, editor_name, tmp_path):
    editor, dm, kind = _setup(layout, editor_name, tmp_path)
    editor.train()
    k = 1 if editor_name == "KE" else 2
    loss = editor.training_step(dm.make_batch(_records(kind, k), train=True), 0)
    loss.backward()
    grads = [p.grad for p in editor.trainable_parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_result_rows_carry_the_relation_and_whether_training_saw_it(tmp_path):
    import dataclasses

    from mendlight.data.composition import prompt_template
    from mendlight.editors.evaluation import record_rows

    editor, dm, kind = _setup("gpt2", "FT", tmp_path)
    records = [
        dataclasses.replace(r, relation=rel, meta={**(r.meta or {}), "relation_in_train": seen})
        for r, rel, seen in zip(_records(kind, 2), ["capital", "currency"], [True, False], strict=True)
    ]
    batch = dm.make_batch(records, train=False)
    editor.eval()
    rows = record_rows(batch, editor.evaluate_batch(batch))
    assert [(r["relation"], r["relation_in_train"]) for r in rows] == [("capital", True), ("currency", False)]
    assert [r["template"] for r in rows] == [
        prompt_template(r.prompt, r.subject) for r in records
    ]  # what the batch composition of a report counts
