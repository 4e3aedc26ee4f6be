import json
from pathlib import Path

import pytest
import torch

from mendlight.data.builders import generation
from mendlight.data.builders.corpus import corpus_passages
from mendlight.data.builders.generation import GenerationOptions, build_generation, split_passages
from mendlight.data.builders.store import SPLITS, read_manifest
from mendlight.data.records import read_records
from mendlight.models.tiny import build_byte_tokenizer

CORPUS = str(Path(__file__).resolve().parents[2] / "fixtures" / "foldoc_sample.dict")  # 20 passages
TOK = build_byte_tokenizer()
SMALL = dict(n_train=4, n_val=1, n_test=1, n_tokens=6, prefix_min=12, prefix_max=30, n_locality=2)
BAD_BYTE = TOK("é", add_special_tokens=False)["input_ids"][0]  # a lone UTF-8 lead byte never round-trips


def _scripted(model, ids, n_tokens, temperature, seed):
    """Stand-in continuations: 6 ASCII bytes per prompt; some equal the greedy one, some do not decode."""
    out = []
    for row in ids:
        k = len(row) * 31 + row[-1]
        sample = TOK(f" {k % 100000:05d}", add_special_tokens=False)["input_ids"]
        if temperature is None:
            out.append(sample if k % 5 == 0 else TOK(" ggggg", add_special_tokens=False)["input_ids"])
        else:
            out.append([BAD_BYTE] * n_tokens if k % 7 == 0 else sample)
    return out


@pytest.fixture
def built(tmp_path, monkeypatch):
    monkeypatch.setattr(generation, "_continue", _scripted)
    return build_generation(
        tmp_path / "gen", model="tiny-random-llama", corpus=CORPUS, progress=False, **SMALL
    )


def test_split_passages_are_disjoint_and_proportional():
    passages = corpus_passages(CORPUS)
    opts = GenerationOptions(n_train=8, n_val=2, n_test=2)
    pools = split_passages(passages, 0, opts)
    every = [p for kind in pools.values() for split in kind.values() for p in split]
    assert sorted(every) == sorted(passages) and len(set(every)) == len(every)
    assert len(pools["loc"]["train"]) + len(pools["loc"]["val"]) + len(pools["loc"]["test"]) == 5
    assert len(pools["edit"]["train"]) == 10 and len(pools["edit"]["val"]) == 2  # 15 edit passages, 8:2:2
    assert split_passages(passages, 0, opts) == pools and split_passages(passages, 1, opts) != pools


def test_records_are_prefixes_with_sampled_targets(built):
    manifest = read_manifest(built)
    assert manifest["counts"] == {"train": 4, "val": 1, "test": 1} and manifest["total"] == 6
    pools = split_passages(corpus_passages(CORPUS), 0, GenerationOptions(**SMALL))
    for split in SPLITS:
        for r in read_records(built / f"{split}.jsonl"):
            assert r.task == "generation" and r.rephrases == [] and r.target_true is None
            ids = TOK(r.prompt)["input_ids"]
            assert SMALL["prefix_min"] <= len(ids) <= SMALL["prefix_max"]
            assert any(
                p.startswith(r.prompt) for p in pools["edit"][split]
            )  # a prefix of its split's passage
            target = TOK(r.target_new, add_special_tokens=False)["input_ids"]
            assert len(target) == 6 and r.target_new != r.meta["greedy"]  # round-trips; differs from greedy
            assert r.meta["n_tokens"] == 6 and r.meta["corpus"] == CORPUS
            assert len(r.locality) == min(2, len(pools["loc"][split]))
            assert all(i.prompt == "" and i.answer in pools["loc"][split] for i in r.locality)


def test_drops_are_counted(built):
    drops = read_manifest(built)["dropped"]
    assert drops["greedy equals sample"] > 0 and drops["target does not round-trip"] > 0


def test_cached_build_is_reused_and_seed_changes_the_hash(built, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a cached build must not sample again")

    files = {s: (built / f"{s}.jsonl").read_bytes() for s in SPLITS}
    monkeypatch.setattr(generation, "_continue", fail)
    again = build_generation(
        tmp_path / "gen", model="tiny-random-llama", corpus=CORPUS, progress=False, **SMALL
    )
    assert again == built and {s: (built / f"{s}.jsonl").read_bytes() for s in SPLITS} == files
    monkeypatch.setattr(generation, "_continue", _scripted)
    other = build_generation(
        tmp_path / "gen1", model="tiny-random-llama", corpus=CORPUS, seed=1, progress=False, **SMALL
    )
    assert read_manifest(other)["hash"] != read_manifest(built)["hash"]
    with pytest.raises(TypeError, match="unknown generation builder option"):
        build_generation(tmp_path / "x", model="tiny-random-llama", corpus=CORPUS, nope=1)


def test_too_small_a_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="too few for 100 train records"):
        build_generation(
            tmp_path / "g", model="tiny-random-llama", corpus=CORPUS, n_train=100, progress=False
        )


def test_data_module_reads_generation_rows(built):
    from mendlight.data import EditDataModule

    dm = EditDataModule(dataset=str(built), tokenizer="tiny-random-llama", n_loc=1, max_loc_length=40)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    labels = batch["edit"]["labels"][0]
    assert int((labels != -100).sum()) == 6  # exactly the sampled tokens are scored
    assert int(batch["loc"]["attention_mask"][0].sum()) == 40  # a passage scored as text, cut to 40 tokens


@pytest.mark.real
def test_real_smollm2_samples_differ_from_its_greedy_output(tmp_path):
    from mendlight.models.loading import load_base_model, load_tokenizer

    opts = dict(n_train=3, n_val=1, n_test=1, n_locality=1)
    path = build_generation(tmp_path / "a", corpus=CORPUS, progress=False, **opts)
    tok, model = load_tokenizer("smollm2-135m"), load_base_model("smollm2-135m")
    records = [r for s in SPLITS for r in read_records(path / f"{s}.jsonl")]
    assert len(records) == 5
    for r in records:
        target = tok(r.target_new, add_special_tokens=False)["input_ids"]
        assert len(target) == 10
        ids = torch.tensor([tok(r.prompt)["input_ids"]])
        with torch.no_grad():
            greedy = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False
            )
        assert (
            greedy[0, ids.shape[1] :].tolist() != target
            and tok.decode(greedy[0, ids.shape[1] :]) == r.meta["greedy"]
        )
    again = build_generation(tmp_path / "b", corpus=CORPUS, progress=False, **opts)
    assert json.loads((again / "manifest.json").read_text())["hash"] == read_manifest(path)["hash"]
    assert all((again / f).read_bytes() == (path / f).read_bytes() for f in ("train.jsonl", "test.jsonl"))
