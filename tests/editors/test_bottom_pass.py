"""The editors' shared bottom pass: rows run in length groups, each at its own width."""

import torch

from mendlight.editors import MEND
from mendlight.editors.rows import RowStack
from tests.editors.helpers import rows


def _groups():
    edit = rows([("The capital of France is", "Rome"), ("Water boils at", "100 degrees")])
    equiv = rows([("France's capital city, as every atlas says, is", "Rome"), ("Boils at?", "100")])
    loc = rows([("2 + 2 =", "4"), ("The currency of Japan is the", "Yen"), ("Hi", "there")])
    return {"edit": edit, "equiv": equiv, "loc": loc}


def test_the_grouped_bottom_pass_equals_one_padded_pass_at_every_real_position(monkeypatch):
    mend = MEND(base_model="tiny-random-llama", rank=8).eval()
    stack = RowStack(mend, _groups(), bottom=False)
    mask = stack.rows["attention_mask"].bool()
    assert len({int(n) for n in mask.sum(1)}) > 3  # rows of many lengths
    grouped = mend.bottom(stack.rows)
    one_pass = mend.splitter.bottom(stack.rows["input_ids"], stack.rows["attention_mask"])
    assert grouped.shape == one_pass.shape
    assert torch.allclose(grouped[mask], one_pass[mask], atol=1e-5)
    # and the logits the top blocks give from either are the same at every real position
    ids, att = stack.rows["input_ids"], stack.rows["attention_mask"]
    a = mend.splitter.top(grouped, ids, att)[mask]
    b = mend.splitter.top(one_pass, ids, att)[mask]
    assert torch.allclose(a, b, atol=1e-5)
    # grouped passes are narrower than the stack: the padding is not computed
    widths = []
    original = mend.splitter.bottom

    def spy(input_ids, attention_mask):
        widths.append(tuple(input_ids.shape))
        return original(input_ids, attention_mask)

    monkeypatch.setattr(mend.splitter, "bottom", spy)
    mend.bottom(stack.rows)
    assert sum(r * t for r, t in widths) < ids.numel()
    assert sum(r for r, _ in widths) == ids.shape[0]


def test_left_padded_rows_run_in_one_pass_unchanged():
    mend = MEND(base_model="tiny-random-llama", rank=8).eval()
    right = rows([("The capital of France is", "Rome"), ("2 + 2 =", "4")])
    width = right["input_ids"].shape[1]
    lengths = right["attention_mask"].sum(1)
    left = {k: torch.stack([v[i].roll(width - int(lengths[i])) for i in range(2)]) for k, v in right.items()}
    hidden = mend.bottom(left)
    assert torch.equal(hidden, mend.splitter.bottom(left["input_ids"], left["attention_mask"]))
