"""Sequential editing: each edit made on the model the previous ones left, all evaluated after the last."""

import json

import torch

from mendlight.cli import main
from mendlight.data import EditDataModule, EditRecord, LocalityItem
from mendlight.editors import ENN, FT, Cache
from mendlight.losses import masked_nll, sequence_success
from mendlight.models.functional import model_logits, state_fingerprint

TINY = "tiny-random-llama"


def _record(i):
    return EditRecord(
        prompt=f"The capital of Country{i} is",
        target_new=f"City{i}",
        target_true="Old",
        rephrases=[f"Country{i}'s capital:"],
        locality=[LocalityItem(f"The sky of {i} is", "blue")],
        id=f"r{i}",
    )


def _rows(i):
    return EditDataModule(tokenizer=TINY, n_loc=1).make_batch([_record(i)], train=False)["edit"]


def test_an_edit_sees_the_model_earlier_edits_made():
    ft = FT(base_model=TINY, edit_lr=1e-2, ft_optimizer="adam", max_steps=100)
    before = state_fingerprint(ft.base)
    first = ft.edit_from(_rows(0), None, None)
    assert ft.last_steps > 0
    again = ft.edit_from(_rows(0), None, first)  # the same edit on the edited model: already the argmax
    assert ft.last_steps == 0 and all(torch.equal(again[n], first[n]) for n in first)
    chained = ft.edit_from(_rows(1), None, first)
    assert ft.last_steps > 0 and any(not torch.equal(chained[n], first[n]) for n in first)
    assert state_fingerprint(ft.base) == before  # materialised only while editing, restored exactly


def test_enn_steps_from_the_chain_model():
    enn = ENN(base_model=TINY, edit_lr=0.3)
    enn.eval()
    first = enn.edit_from(_rows(0), None, enn.pre_edit_deltas())
    second = enn.edit_from(_rows(1), None, first)
    start = {n: enn.base.get_parameter(n) + first[n] for n in enn.trained_names}
    leaves = {n: start[n].detach().clone().requires_grad_(True) for n in enn.edit_names}
    rows = _rows(1)
    inputs = {"input_ids": rows["input_ids"], "attention_mask": rows["attention_mask"]}
    params = {**{n: start[n].detach() for n in enn.trained_names}, **leaves}
    grads = torch.autograd.grad(
        masked_nll(model_logits(enn.base, inputs, params), rows["labels"]), list(leaves.values())
    )
    for name, grad in zip(enn.edit_names, grads, strict=True):
        expected = start[name] - 0.3 * grad - enn.base.get_parameter(name)
        torch.testing.assert_close(second[name], expected, atol=1e-6, rtol=1e-4)


def test_cache_accumulates_entries():
    cache = Cache(base_model=TINY, epsilon=1e-3)
    chain = None
    for i in range(3):
        chain = cache.edit_from(_rows(i), None, chain)
    assert len(chain) == 3
    assert cache.matches(_rows(1), chain).tolist() == [1]


def test_cli_sequential_test_evaluates_after_the_last_edit(tmp_path, monkeypatch, no_argv):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    root = Path(__file__).resolve().parents[2]
    args = ["-c", str(root / "configs" / "smollm2_facts_ft.yaml"), f"--model.init_args.base_model={TINY}"]
    args += [
        "--model.init_args.edit_lr=0.01",
        "--data.init_args.max_eval_records=5",
        "--trainer.enable_progress_bar=false",
    ]
    main(["test", *args, "--model.init_args.sequential=3"])
    run = next((tmp_path / "runs" / "smollm2_facts_ft").glob("version_*"))
    results = json.loads((run / "results.json").read_text())
    records = results["records"]
    assert [(r["chain"], r["chain_position"], r["chain_length"]) for r in records] == [
        (0, 0, 3),
        (0, 1, 3),
        (0, 2, 3),
        (1, 0, 2),
        (1, 1, 2),
    ]
    assert results["hparams"]["sequential"] == 3
    # recompute the first chain by hand: three edits in sequence, then the first edit checked at the end
    ft = FT(base_model=TINY, edit_lr=0.01, max_steps=100, ft_optimizer="adam")
    dm = EditDataModule(dataset="facts", tokenizer=TINY, max_eval_records=5)
    dm.setup("test")
    chain, batches = None, []
    for record in dm.records("test")[:3]:
        batch = dm.make_batch([record], train=False)
        batches.append(batch)
        chain = ft.edit_from(batch["edit"], None, chain)
    for batch, row in zip(batches, records[:3], strict=True):
        logits = ft.logits([batch["edit"]], chain)[0]
        assert row["es_edit"] == int(sequence_success(logits, batch["edit"]["labels"]).all())
