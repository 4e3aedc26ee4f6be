import inspect

import pytest
import torch

from mendlight.data import EditDataModule, EditRecord, LocalityItem, write_records
from mendlight.data import module as module_mod

TOK = "tiny-random-llama"  # byte tokenizer: one token per byte, no BOS


def _record(i, n_reph=2, n_loc=3, true=True):
    return EditRecord(
        prompt=f"Prompt number {i} says",
        target_new=f"new{i}",
        target_true=f"old{i}" if true else None,
        rephrases=[f"Rephrase {j} of {i}:" for j in range(n_reph)],
        locality=[LocalityItem(f"Locality {j} of {i} is", f"ans{i}.{j}") for j in range(n_loc)],
        id=f"r{i}",
    )


@pytest.fixture
def data_dir(tmp_path):
    write_records(tmp_path / "train.jsonl", [_record(i) for i in range(20)])
    write_records(tmp_path / "val.jsonl", [_record(100 + i, n_reph=i % 3) for i in range(7)])
    write_records(tmp_path / "test.jsonl", [_record(200 + i) for i in range(5)])
    return tmp_path


def _dm(data_dir, **kwargs):
    kwargs.setdefault("tokenizer", TOK)
    dm = EditDataModule(dataset=str(data_dir), **kwargs)
    dm.prepare_data()
    dm.setup()
    return dm


def _labeled(dm, rows, i):
    labels = rows["labels"][i]
    return dm.tok.decode(labels[labels != -100])


def _check_right_padding(rows, pad_id):
    mask = rows["attention_mask"]
    lengths = mask.sum(1)
    for i, n in enumerate(lengths.tolist()):
        assert mask[i, :n].all() and not mask[i, n:].any()  # ones then zeros
        assert (rows["input_ids"][i, n:] == pad_id).all()
        assert (rows["labels"][i, n:] == -100).all()
        assert n > 0


def test_init_is_cheap_and_documented(monkeypatch):
    def no_load(ref):
        raise AssertionError("__init__ must not load a tokenizer")

    monkeypatch.setattr("mendlight.models.loading.load_tokenizer", no_load)
    dm = EditDataModule(dataset="/does/not/exist", n_edits=4)
    assert dm.hparams.n_edits == 4 and dm.hparams.dataset == "/does/not/exist"
    assert dm.eval_batch_size == 4
    assert EditDataModule(eval_n_edits=2).eval_batch_size == 2
    doc = inspect.getdoc(EditDataModule.__init__)
    assert "Args:" in doc
    for name in inspect.signature(EditDataModule.__init__).parameters:
        if name != "self":
            assert f"    {name}:" in doc, name
    with pytest.raises(ValueError, match="n_edits"):
        EditDataModule(n_edits=0)


def test_encode_aligns_labels_with_logits(data_dir):
    dm = EditDataModule(tokenizer=TOK, max_length=64)
    ids, labels = dm.encode("The capital of France is", "Paris")
    prompt_len = len(dm.tok("The capital of France is")["input_ids"])
    assert len(ids) == len(labels) == prompt_len + len(" Paris")
    assert dm.tok.decode(ids) == "The capital of France is Paris"
    scored = [i for i, lab in enumerate(labels) if lab != -100]
    assert scored == list(range(prompt_len - 1, len(ids) - 1))
    for i in scored:
        assert labels[i] == ids[i + 1]  # position i predicts the token at i + 1
    assert dm.tok.decode([labels[i] for i in scored]) == " Paris"
    ids2, labels2 = dm.encode("Answer: ", "Paris")  # no second space after trailing whitespace
    assert dm.tok.decode(ids2) == "Answer: Paris"
    assert dm.tok.decode([x for x in labels2 if x != -100]) == "Paris"


def test_encode_truncates_prompt_from_the_left():
    dm = EditDataModule(tokenizer=TOK, max_length=16)
    ids, labels = dm.encode("a very long prompt that cannot fit", "xyz")
    assert len(ids) == 16
    assert dm.tok.decode(ids).endswith("cannot fit xyz")
    assert dm.tok.decode([x for x in labels if x != -100]) == " xyz"
    with pytest.raises(ValueError, match="max_length"):
        dm.encode("prompt", "a target that is much longer than sixteen bytes")


def test_train_batch_layout(data_dir):
    dm = _dm(data_dir, n_edits=4, n_loc=2)
    batch = next(iter(dm.train_dataloader()))
    pad = dm.tok.pad_token_id
    assert set(batch) == {"edit", "equiv", "loc", "cond", "meta"}
    assert batch["edit"]["input_ids"].shape[0] == 4 and "edit_index" not in batch["edit"]
    assert batch["equiv"]["input_ids"].shape[0] == 4
    assert batch["equiv"]["edit_index"].tolist() == [0, 1, 2, 3]
    assert batch["loc"]["input_ids"].shape[0] == 8
    assert batch["loc"]["edit_index"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for group in ("edit", "equiv", "loc"):
        rows = batch[group]
        assert rows["input_ids"].dtype == rows["labels"].dtype == rows["attention_mask"].dtype == torch.long
        _check_right_padding(rows, pad)
    meta = batch["meta"]
    assert len(meta["ids"]) == 4 and len(meta["loc_prompts"]) == 8 == len(meta["loc_answers"])
    for i, target in enumerate(meta["targets"]):
        assert _labeled(dm, batch["edit"], i) == " " + target
        assert _labeled(dm, batch["equiv"], i) == " " + target
        n = int(batch["equiv"]["attention_mask"][i].sum())
        equiv_text = dm.tok.decode(batch["equiv"]["input_ids"][i, :n])
        options = [meta["prompts"][i], *meta["rephrases"][i]]
        assert any(equiv_text == p + " " + target for p in options)
    for row, answer in enumerate(meta["loc_answers"]):
        assert _labeled(dm, batch["loc"], row) == " " + answer
        i = int(batch["loc"]["edit_index"][row])
        assert f" of {meta['ids'][i][1:]} is" in meta["loc_prompts"][row]  # the item belongs to that record


def test_eval_batch_layout(data_dir):
    dm = _dm(data_dir, n_edits=2, eval_n_edits=3, n_loc=2)
    batches = list(dm.val_dataloader())
    assert [len(b["meta"]["ids"]) for b in batches] == [3, 3, 1]  # 7 records, no drop_last
    records = dm.records("val")
    batch = batches[0]
    assert set(batch) == {"edit", "equiv", "loc", "cond", "true", "meta"}
    n_reph = [len(r.rephrases) for r in records[:3]]
    assert n_reph == [0, 1, 2]
    assert batch["equiv"]["edit_index"].tolist() == [1, 2, 2]  # one row per rephrase
    assert batch["loc"]["edit_index"].tolist() == [0, 0, 1, 1, 2, 2]
    assert batch["meta"]["loc_prompts"] == [item.prompt for r in records[:3] for item in r.locality[:2]]
    for row, i in enumerate(batch["equiv"]["edit_index"].tolist()):
        assert _labeled(dm, batch["equiv"], row) == " " + records[i].target_new
    for i, r in enumerate(records[:3]):
        assert _labeled(dm, batch["edit"], i) == " " + r.target_new
        assert _labeled(dm, batch["true"], i) == " " + r.target_true
    _check_right_padding(batch["true"], dm.tok.pad_token_id)
    assert batch["meta"]["rephrases"] == [r.rephrases for r in records[:3]]
    assert batch["meta"]["targets_true"] == [r.target_true for r in records[:3]]


def test_empty_groups_and_optional_true():
    dm = EditDataModule(tokenizer=TOK, n_loc=1)
    bare = [EditRecord(prompt="Edit this", target_new="now"), EditRecord(prompt="And that", target_new="too")]
    batch = dm.make_batch(bare, train=False)
    assert "true" not in batch
    for group in ("equiv", "loc"):
        assert batch[group]["input_ids"].shape == (0, 1)
        assert batch[group]["labels"].shape == (0, 1) and batch[group]["edit_index"].shape == (0,)
    assert batch["meta"]["ids"] == ["#0", "#1"]
    train = dm.make_batch(bare, train=True)  # the equivalence row falls back to the edit prompt
    assert train["equiv"]["input_ids"].tolist() == train["edit"]["input_ids"].tolist()
    assert "true" not in train and train["loc"]["input_ids"].shape == (0, 1)
    mixed = dm.make_batch([EditRecord(prompt="p", target_new="x", target_true="y"), bare[0]], train=False)
    assert (mixed["true"]["labels"][1] == -100).all()  # a record without target_true is not scored
    assert _labeled(dm, mixed["true"], 0) == " y"


def test_locality_of_an_edited_fact_is_skipped():
    dm = EditDataModule(tokenizer=TOK, n_loc=2)
    a = EditRecord(prompt="Capital of A is", target_new="X", locality=[LocalityItem("Capital of B is", "b")])
    b = EditRecord(prompt="Capital of B is", target_new="Y", locality=[LocalityItem("Capital of C is", "c")])
    batch = dm.make_batch([a, b], train=False)
    assert batch["meta"]["loc_prompts"] == ["Capital of C is"]
    assert batch["loc"]["edit_index"].tolist() == [1]


def _signature(batches):
    return [(b["meta"]["ids"], b["equiv"]["input_ids"].tolist(), b["meta"]["loc_prompts"]) for b in batches]


def test_training_sampling_is_reproducible(data_dir):
    first = _dm(data_dir, n_edits=3, n_loc=1, seed=7)
    second = _dm(data_dir, n_edits=3, n_loc=1, seed=7)
    a = _signature(first.train_dataloader()) + _signature(first.train_dataloader())
    b = _signature(second.train_dataloader()) + _signature(second.train_dataloader())
    assert a == b
    loader = first.train_dataloader()
    assert len(loader) == 6  # 20 records // 3, the short batch dropped
    epoch1 = _signature(loader)
    loader.sampler.set_epoch(1)  # Lightning calls set_epoch at every epoch start
    epoch2 = _signature(loader)
    assert epoch1 != epoch2  # reshuffled and resampled each epoch
    assert a[:6] == epoch1
    other = _dm(data_dir, n_edits=3, n_loc=1, seed=8)
    assert _signature(other.train_dataloader()) != a[:6]
    ids = [i for ids, _, _ in epoch1 for i in ids]
    assert len(set(ids)) == 18


def test_reproducible_with_workers(data_dir):
    a = _dm(data_dir, n_edits=4, seed=3, num_workers=2)
    b = _dm(data_dir, n_edits=4, seed=3, num_workers=2)
    assert _signature(a.train_dataloader()) == _signature(b.train_dataloader())


def test_max_records_and_loaders(data_dir):
    dm = _dm(data_dir, n_edits=2, max_train_records=5, max_eval_records=2)
    assert [r.id for r in dm.records("train")] == [f"r{i}" for i in range(5)]
    assert [r.id for r in dm.records("val")] == ["r100", "r101"]
    assert [r.id for r in dm.records("test")] == ["r200", "r201"]
    assert len(dm.train_dataloader()) == 2
    assert [b["meta"]["ids"] for b in dm.test_dataloader()] == [["r200", "r201"]]
    assert [b["meta"]["ids"] for b in dm.predict_dataloader()] == [["r200", "r201"]]
    too_few = _dm(data_dir, n_edits=8, max_train_records=5)
    with pytest.raises(ValueError, match="n_edits=8"):
        too_few.train_dataloader()


def test_setup_errors(tmp_path):
    write_records(tmp_path / "train.jsonl", [_record(0)])
    dm = EditDataModule(dataset=str(tmp_path), tokenizer=TOK)
    with pytest.raises(FileNotFoundError, match=r"val\.jsonl"):
        dm.setup("fit")
    missing = EditDataModule(dataset=str(tmp_path / "nowhere"), tokenizer=TOK)
    with pytest.raises(FileNotFoundError, match="facts"):
        missing.prepare_data()
    with pytest.raises(RuntimeError, match="setup"):
        EditDataModule(dataset=str(tmp_path), tokenizer=TOK).train_dataloader()


def test_stage_loads_only_needed_splits(tmp_path):
    write_records(tmp_path / "test.jsonl", [_record(0), _record(1)])
    dm = EditDataModule(dataset=str(tmp_path), tokenizer=TOK)
    dm.setup("test")
    assert set(dm.splits) == {"test"}
    assert type(dm.splits["test"]).__name__ == "Dataset"


def test_embedded_facts(tmp_path, monkeypatch):
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path))
    small = {"max_per_relation": 40}  # a quick build (tests/data/test_facts.py checks the default one)
    dm = EditDataModule(
        tokenizer=TOK, n_edits=2, max_train_records=10, max_eval_records=4, dataset_options=small
    )
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.splits["train"]) == 10 and len(dm.splits["val"]) == 4
    batch = next(iter(dm.val_dataloader()))
    assert "true" in batch and batch["equiv"]["input_ids"].shape[0] == 2 * 3  # three held-out rephrases each
    for i, target in enumerate(batch["meta"]["targets"]):
        assert _labeled(dm, batch["edit"], i) == " " + target
    assert module_mod.EMBEDDED_DATASETS == ("facts", "facts-qa", "claims", "generation")
    qa = EditDataModule(dataset="facts-qa", tokenizer=TOK, dataset_options=small)
    qa.setup("test")
    assert all(r.prompt.startswith("Q: ") for r in qa.records("test"))
    claims = EditDataModule(dataset="claims", tokenizer="tiny-random-bert")
    claims.setup("test")
    assert {r.task for r in claims.records("test")} == {"classification"}


# ---------------------------------------------------------------------- layouts and task types


def _gen_record(i, rephrases=(), true=None):
    return EditRecord(
        prompt=f"Passage {i}: the river runs down the hill and",
        target_new=" then it ends",
        target_true=true,
        rephrases=list(rephrases),
        locality=[LocalityItem("", f"A whole passage of text number {i}."), LocalityItem("Q is", "A")],
        id=f"g{i}",
        task="generation",
    )


def _scored(rows, i):
    labels = rows["labels"][i]
    return labels[labels != -100].tolist()


def test_generation_edit_and_locality_rows():
    dm = EditDataModule(tokenizer=TOK, n_loc=2, max_length=64, max_loc_length=12, seed=5)
    rec = _gen_record(0, true=" and so on")
    batch = dm.make_batch([rec], train=False)
    edit = batch["edit"]
    n = int(edit["attention_mask"][0].sum())
    ids = edit["input_ids"][0, :n].tolist()
    assert dm.tok.decode(ids) == rec.prompt + rec.target_new  # the target is appended verbatim
    target = dm.tok(rec.target_new, add_special_tokens=False)["input_ids"]
    assert _scored(edit, 0) == target == ids[-len(target) :]  # the last tokens are the labels
    assert edit["labels"][0, n - len(target) - 1 : n - 1].tolist() == target  # aligned with the logits
    assert _labeled(dm, batch["true"], 0) == " and so on"
    loc = batch["loc"]
    passage = dm.tok("A whole passage of text number 0.")["input_ids"][:12]
    assert loc["input_ids"][0].tolist() == passage  # truncated to max_loc_length, keeps the start
    assert loc["labels"][0].tolist() == passage[1:] + [-100]  # every next token is scored
    assert loc["attention_mask"][0].tolist() == [1] * 12
    assert _labeled(dm, loc, 1) == " A"  # a locality item with a prompt is prompt -> answer
    assert batch["meta"]["loc_prompts"] == ["", "Q is"] and batch["meta"]["tasks"] == ["generation"]
    _check_right_padding(loc, dm.tok.pad_token_id)


def _cut(dm, batch, i=0):
    """Number of prefix tokens removed from edit row ``i`` in its equivalence row."""
    edit_len = int(batch["edit"]["attention_mask"][i].sum())
    rows = batch["equiv"]["edit_index"].tolist()
    j = rows.index(i)
    equiv_len = int(batch["equiv"]["attention_mask"][j].sum())
    remove = edit_len - equiv_len
    assert (
        batch["equiv"]["input_ids"][j, :equiv_len].tolist()
        == batch["edit"]["input_ids"][i, remove:edit_len].tolist()
    )
    assert (
        batch["equiv"]["labels"][j, :equiv_len].tolist()
        == batch["edit"]["labels"][i, remove:edit_len].tolist()
    )
    return remove


def test_generation_prefix_cut_rephrase():
    dm = EditDataModule(tokenizer=TOK, n_loc=0, seed=1)
    records = [_gen_record(i) for i in range(12)]
    prefix = [len(dm.tok(r.prompt)["input_ids"]) for r in records]
    for train in (False, True):
        batch = dm.make_batch(records, train=train)
        assert batch["equiv"]["edit_index"].tolist() == list(range(12))  # one cut row per edit
        cuts = [_cut(dm, batch, i) for i in range(12)]
        assert all(0 <= c <= n // 2 for c, n in zip(cuts, prefix, strict=True)) and len(set(cuts)) > 1
        for i in range(12):
            assert _scored(batch["equiv"], i) == _scored(batch["edit"], i)  # the labels move with the tokens
    # evaluation: deterministic per record id and seed, whatever the batch
    alone = dm.make_batch(records[3:4], train=False)
    assert _cut(dm, alone) == _cut(dm, dm.make_batch(records, train=False), 3)
    again = EditDataModule(tokenizer=TOK, n_loc=0, seed=1).make_batch(records, train=False)
    assert (
        again["equiv"]["input_ids"].tolist()
        == dm.make_batch(records, train=False)["equiv"]["input_ids"].tolist()
    )
    per_seed = [
        tuple(
            _cut(dm, EditDataModule(tokenizer=TOK, n_loc=0, seed=s).make_batch(records, False), i)
            for i in range(12)
        )
        for s in range(3)
    ]
    assert len(set(per_seed)) > 1
    # a generation record with rephrases uses them (target still verbatim)
    rephrased = _gen_record(0, rephrases=["Another passage that"])
    batch = dm.make_batch([rephrased], train=False)
    assert dm.tok.decode(batch["equiv"]["input_ids"][0]) == "Another passage that then it ends"


def test_generation_locality_scored_as_text_in_training(data_dir):
    dm = EditDataModule(tokenizer=TOK, n_loc=2, max_length=64, seed=0)
    batch = dm.make_batch([_gen_record(0), _gen_record(1)], train=True)
    for row, prompt in enumerate(batch["meta"]["loc_prompts"]):
        n = int(batch["loc"]["attention_mask"][row].sum())
        ids = batch["loc"]["input_ids"][row, :n].tolist()
        if prompt == "":
            assert batch["loc"]["labels"][row, :n].tolist() == ids[1:] + [-100]
        else:
            assert _labeled(dm, batch["loc"], row) == " A"


@pytest.mark.parametrize(
    ("ref", "start"), [("tiny-random-t5", 0), ("tiny-random-t5-v1_1", 0), ("tiny-random-bart", 2)]
)
def test_seq2seq_batches(ref, start):
    from mendlight.data.batch import concat_rows
    from mendlight.models.loading import load_base_config

    assert load_base_config(ref).decoder_start_token_id == start
    dm = EditDataModule(tokenizer=ref, n_loc=2, max_length=32)
    assert dm.layout == "seq2seq"
    tok, eos, pad = dm.tok, dm.tok.eos_token_id, dm.tok.pad_token_id
    records = [_record(0), _record(1, n_reph=1, true=False)]
    batch = dm.make_batch(records, train=False)
    assert set(batch) == {"edit", "equiv", "loc", "cond", "true", "meta"}

    def check(rows, i, prompt, target):
        enc = tok(prompt)["input_ids"]
        n = int(rows["attention_mask"][i].sum())
        assert rows["input_ids"][i, :n].tolist() == enc  # with the tokenizer's special tokens
        labels = tok(target, add_special_tokens=False)["input_ids"] + [eos]  # no leading space, eos last
        m = int(rows["decoder_attention_mask"][i].sum())
        assert rows["labels"][i, :m].tolist() == labels
        assert rows["decoder_input_ids"][i, :m].tolist() == [start] + labels[:-1]
        assert (rows["labels"][i, m:] == -100).all() and (rows["decoder_input_ids"][i, m:] == pad).all()
        assert (rows["input_ids"][i, n:] == pad).all() and not rows["attention_mask"][i, n:].any()

    for i, r in enumerate(records):
        check(batch["edit"], i, r.prompt, r.target_new)
    for row, i in enumerate(batch["equiv"]["edit_index"].tolist()):
        check(batch["equiv"], row, records[i].rephrases[row - 2 * (i == 1)], records[i].target_new)
    for row in range(batch["loc"]["input_ids"].shape[0]):
        check(batch["loc"], row, batch["meta"]["loc_prompts"][row], batch["meta"]["loc_answers"][row])
    check(batch["true"], 0, records[0].prompt, records[0].target_true)
    assert batch["true"]["labels"][1].tolist() == [-100] * batch["true"]["labels"].shape[1]
    assert batch["true"]["decoder_input_ids"][1, 0] == start
    stacked, sizes = concat_rows([batch[g] for g in ("edit", "equiv", "loc", "true")], pad)
    assert sizes == [2, 3, 4, 2]
    assert (
        stacked["labels"].shape
        == stacked["decoder_input_ids"].shape
        == stacked["decoder_attention_mask"].shape
    )
    assert (stacked["decoder_input_ids"][:, 0] == start).all()
    train = dm.make_batch(records, train=True)
    assert train["equiv"]["labels"].tolist() == train["edit"]["labels"].tolist()  # same targets
    empty = dm.make_batch([EditRecord(prompt="Edit this", target_new="now")], train=False)
    assert empty["equiv"]["decoder_input_ids"].shape == (0, 1)


def _claim(i, label="true", true="false"):
    return EditRecord(
        prompt=f"Claim number {i} holds.",
        target_new=label,
        target_true=true,
        rephrases=[f"Claim {i} is right."],
        locality=[LocalityItem(f"Other claim {i}.{j}.", ["true", "false"][j % 2]) for j in range(3)],
        id=f"c{i}",
        task="classification",
    )


def test_classifier_batches(tmp_path):
    for split in ("train", "val", "test"):
        write_records(tmp_path / f"{split}.jsonl", [_claim(i, ["true", "false"][i % 2]) for i in range(6)])
    dm = _dm(tmp_path, tokenizer="tiny-random-bert", n_edits=2, n_loc=2, max_length=16)
    assert dm.layout == "classifier"
    batch = next(iter(dm.val_dataloader()))
    assert batch["edit"]["labels"].tolist() == [1, 0]
    assert batch["equiv"]["labels"].tolist() == [1, 0] and batch["equiv"]["edit_index"].tolist() == [0, 1]
    assert batch["loc"]["labels"].tolist() == [1, 0, 1, 0]
    assert batch["true"]["labels"].tolist() == [0, 0]
    for group in ("edit", "equiv", "loc", "true"):
        rows = batch[group]
        assert rows["labels"].ndim == 1 and rows["labels"].shape[0] == rows["input_ids"].shape[0]
        assert "decoder_input_ids" not in rows
    n = int(batch["edit"]["attention_mask"][0].sum())
    claim = dm.tok("Claim number 0 holds.")["input_ids"]
    assert len(claim) > 16 and n == 16  # too long for max_length: the claim keeps its start
    assert batch["edit"]["input_ids"][0, :n].tolist() == claim[:16]
    train = next(iter(dm.train_dataloader()))
    assert train["loc"]["labels"].shape == (4,) and train["edit"]["labels"].shape == (2,)
    mixed = dm.make_batch([_claim(0, true=None), _claim(1)], train=False)
    assert mixed["true"]["labels"].tolist() == [-100, 0]
    no_true = dm.make_batch([_claim(0, true=None)], train=False)
    assert no_true.keys() == {"edit", "equiv", "loc", "cond", "meta"}


def test_task_and_model_mismatch_errors(tmp_path):
    from mendlight.data.records import RecordError

    cases = [
        (TOK, [_claim(0)], r"record 'c0' has task 'classification'.*classifier"),
        ("tiny-random-bert", [_record(0)], r"record 'r0' has task 'completion'.*classification records"),
        ("tiny-random-t5", [_gen_record(0)], r"record 'g0' has task 'generation'.*causal"),
    ]
    for ref, records, message in cases:
        for split in ("train", "val", "test"):
            write_records(tmp_path / f"{split}.jsonl", records)
        dm = EditDataModule(dataset=str(tmp_path), tokenizer=ref)
        with pytest.raises(RecordError, match=r"train\.jsonl:1: " + message):
            dm.setup("fit")
        with pytest.raises(RecordError, match=message):
            EditDataModule(tokenizer=ref).make_batch(records, train=False)
    with pytest.raises(TypeError, match="causal"):
        EditDataModule(tokenizer="tiny-random-bert").encode("a", "b")


def test_encode_errors_name_the_record():
    dm = EditDataModule(tokenizer=TOK, max_length=8)
    with pytest.raises(ValueError, match="record 'long'.*max_length=8"):
        dm.make_batch([EditRecord(prompt="p", target_new="a much too long target", id="long")], train=False)
    with pytest.raises(ValueError, match="max_loc_length"):
        EditDataModule(max_loc_length=1)


def test_condition_rows_for_knowledge_editor():
    dm = EditDataModule(tokenizer=TOK, max_length=64)
    records = [_record(0, true=True), _gen_record(1), EditRecord(prompt="P is", target_new="Q")]
    cond = dm.make_batch(records, train=False)["cond"]
    assert set(cond) == {"input_ids", "attention_mask"}
    texts = [
        dm.tok.decode(r[m.bool()]) for r, m in zip(cond["input_ids"], cond["attention_mask"], strict=True)
    ]
    assert texts[0] == f"{records[0].target_true} >> {records[0].target_new} || {records[0].prompt}"
    assert texts[1] == records[1].prompt + records[1].target_new  # generation: the edit sequence itself
    assert texts[2] == " >> Q || P is"  # no old target


@pytest.mark.parametrize("equiv_from", ["prompt_and_rephrases", "rephrases"])
def test_equiv_from_chooses_the_training_equivalence_row(data_dir, equiv_from):
    from mendlight.errors import ConfigError

    dm = _dm(data_dir, n_loc=1, equiv_from=equiv_from)
    tok = dm.tok
    records = dm.records("train")
    used_prompt = 0
    for record in records:
        batch = dm.make_batch([record], train=True)
        row = batch["equiv"]["input_ids"][0][batch["equiv"]["attention_mask"][0].bool()]
        text = tok.decode(row, skip_special_tokens=True)
        assert any(text.startswith(p) for p in (record.prompt, *record.rephrases))
        used_prompt += text.startswith(record.prompt)
    if equiv_from == "rephrases":
        assert used_prompt == 0
    else:
        assert 0 < used_prompt < len(records)  # a seeded choice among the prompt and the two rephrases
    with pytest.raises(ConfigError, match="equiv_from"):
        EditDataModule(dataset=str(data_dir), tokenizer=TOK, equiv_from="prompt")


def test_batch_meta_names_each_records_relation_and_whether_training_saw_it():
    dm = EditDataModule(tokenizer=TOK, n_loc=1)
    records = [
        EditRecord(prompt="a", target_new="x", relation="capital", meta={"relation_in_train": True}),
        EditRecord(prompt="b", target_new="y", relation="currency", meta={"relation_in_train": False}),
        EditRecord(prompt="c", target_new="z"),
        EditRecord(prompt="Paris is in", target_new="Italy", subject="Paris"),
    ]
    meta = dm.make_batch(records, train=False)["meta"]
    assert meta["relations"] == ["capital", "currency", None, None]
    assert meta["relations_in_train"] == [True, False, None, None]
    assert meta["templates"] == ["a", "b", "c", "{s} is in"]  # the subject as {s}
