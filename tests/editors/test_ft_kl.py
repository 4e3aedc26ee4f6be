import random

import pytest
import torch

from mendlight.data import EditDataModule, EditRecord, LocalityItem
from mendlight.data.batch import score_mask
from mendlight.data.locality_pool import LocalityPool
from mendlight.data.records import write_records
from mendlight.editors import FT, FTKL
from mendlight.losses import kl_locality
from mendlight.models.functional import state_fingerprint

TINY = "tiny-random-llama"


def _records(n, offset=0):
    return [
        EditRecord(
            prompt=f"The capital of Country{i} is",
            target_new=f"City{i}",
            target_true=f"Old{i}",
            rephrases=[f"Country{i}'s capital:"],
            locality=[
                LocalityItem(f"The colour of thing {i} is", "blue"),
                LocalityItem(f"Item {i} costs", "ten"),
            ],
            id=f"r{i}",
        )
        for i in range(offset, offset + n)
    ]


@pytest.fixture
def dm(tmp_path):
    for split, off in (("train", 0), ("val", 100), ("test", 200)):
        write_records(tmp_path / f"{split}.jsonl", _records(6, off))
    module = EditDataModule(dataset=str(tmp_path), tokenizer=TINY, n_loc=2)
    module.setup("test")
    return module


def test_pool_draws_training_locality_rows(dm):
    pool = LocalityPool(dm, "train")
    assert len(pool) == 12 and "train" in dm.splits  # the train split was loaded on demand
    rows = pool.sample(5, random.Random(0))
    assert rows["input_ids"].shape[0] == 5 and "edit_index" not in rows
    prompts = {
        dm.tok.decode(r[m.bool()]) for r, m in zip(rows["input_ids"], rows["attention_mask"], strict=True)
    }
    train_prompts = {f"{it.prompt} {it.answer}" for r in _records(6) for it in r.locality}
    assert prompts <= train_prompts  # drawn from the *training* records, never val/test
    again = pool.sample(5, random.Random(0))
    assert torch.equal(again["input_ids"], rows["input_ids"])


def test_ft_kl_needs_data(dm):
    ft_kl = FTKL(base_model=TINY)
    with pytest.raises(RuntimeError, match="attach_datamodule"):
        ft_kl.edit(dm.make_batch(_records(1, 200), train=False)["edit"])


def _held_out_kl(editor, dm, deltas):
    loc = dm.make_batch(_records(4, 300), train=False)["loc"]
    pre, post = editor.logits([loc])[0], editor.logits([loc], deltas)[0]
    return float(kl_locality(pre, post, score_mask(loc)))


def test_kl_term_changes_the_edit_and_keeps_locality_closer(dm):
    """Same optimiser, lr and step limit, the paper's c_edit_ft: FT+KL moves held-out locality outputs less.

    Measured 2026-12-02 on the tiny Llama: FT+KL's held-out KL was 0.26-0.39x FT's on each record, and it
    still reached every target within the limit (9-13 steps vs FT's 6-7).
    """
    common = dict(base_model=TINY, edit_lr=3e-3, ft_optimizer="adam", max_steps=15)
    ft, ft_kl = FT(**common), FTKL(loc_batch_size=4, **common)
    ft_kl.attach_datamodule(dm)
    before = state_fingerprint(ft_kl.base)
    kl_ft, kl_ftkl, differ = [], [], []
    for record in _records(4, 200):
        rows = dm.make_batch([record], train=False)["edit"]
        d_ft, d_kl = ft.edit(rows), ft_kl.edit(rows)
        assert ft_kl.last_steps < 15
        differ.append(any(not torch.allclose(d_ft[n], d_kl[n]) for n in d_ft))
        kl_ft.append(_held_out_kl(ft, dm, d_ft))
        kl_ftkl.append(_held_out_kl(ft_kl, dm, d_kl))
    assert all(differ)
    assert all(a < b for a, b in zip(kl_ftkl, kl_ft, strict=True)), (kl_ft, kl_ftkl)
    assert sum(kl_ftkl) < 0.5 * sum(kl_ft), (kl_ft, kl_ftkl)
    assert state_fingerprint(ft_kl.base) == before
    rows = dm.make_batch(_records(1, 200), train=False)["edit"]
    assert all(torch.equal(ft_kl.edit(rows)[n], d) for n, d in ft_kl.edit(rows).items())  # reproducible


def test_ft_kl_still_reaches_the_target(dm):
    ft_kl = FTKL(base_model=TINY, edit_lr=1e-2, ft_optimizer="adam", max_steps=100)
    ft_kl.attach_datamodule(dm)
    ft_kl.eval()
    batch = dm.make_batch(_records(1, 200), train=False)
    out = ft_kl.evaluate_batch(batch)
    assert bool(out.post_edit.correct().all()) and ft_kl.last_steps < 100


def test_lm_chunk_gives_the_one_pass_edit_with_the_same_locality_draws(dm):
    ft_kl = FTKL(base_model=TINY, edit_lr=1.0, ft_optimizer="sgd", max_steps=5, loc_batch_size=2)
    ft_kl.attach_datamodule(dm)
    rows = dm.make_batch(_records(5, 200), train=False)["edit"]
    ft_kl.hparams.lm_chunk = None
    whole = ft_kl.edit(rows)
    assert ft_kl.last_steps == 5
    draws = []
    sample = ft_kl.pool.sample
    ft_kl.pool.sample = lambda n, rng: draws.append(n) or sample(n, rng)
    ft_kl.hparams.lm_chunk = 2
    chunked = ft_kl.edit(rows)
    assert ft_kl.last_steps == 5 and draws == [2] * 5  # one locality draw per step, as in one pass
    for name in ft_kl.edit_names:  # SGD: the summed chunk gradients give the one-pass steps
        torch.testing.assert_close(chunked[name], whole[name], atol=1e-8, rtol=1e-5)
        assert float(whole[name].abs().max()) > 1e-4
