"""The embedded fact dataset: its size and relations, splits, templates, real answers and determinism.

The fixture ``full`` is the real default build (checked once for its counts and record by record); the other
tests use small builds (``max_per_relation``) to stay quick.
"""

import json
import re
from collections import Counter, defaultdict

import pytest

from mendlight.data import EditDataModule, read_records
from mendlight.data.builders import fact_sources
from mendlight.data.builders import facts as facts_mod
from mendlight.data.builders.fact_sources import DATA_PACKAGES, SOURCES
from mendlight.data.builders.facts import (
    RELATION_TEMPLATES,
    RELATIONS,
    SPLITS,
    FactOptions,
    assign_split,
    build_facts,
    collect_facts,
    heldout_relations,
    main,
)
from mendlight.data.builders.options import accepted_options, check_dataset_options
from mendlight.errors import ConfigError

ORIGINAL_RELATIONS = {"capital", "official_language", "currency", "continent", "subregion", "city_country"}
SMALL = {"max_per_relation": 40}  # about 1,000 records: a quick build

#: Well-known facts, at least one per relation, that the default build must contain.
KNOWN_FACTS = {
    "capital": {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi"},
    "official_language": {"Germany": "German", "Brazil": "Portuguese"},
    "currency": {"Japan": "Yen", "Germany": "Euro"},
    "continent": {"Brazil": "South America", "Kenya": "Africa", "France": "Europe"},
    "subregion": {"France": "Western Europe", "Japan": "Eastern Asia"},
    "city_country": {"Osaka": "Japan", "Lyon": "France", "Chicago": "United States"},
    "calling_code": {"France": "+33", "Germany": "+49", "Japan": "+81"},
    "top_level_domain": {"Japan": ".jp", "France": ".fr", "Germany": ".de"},
    "currency_code": {"Japan": "JPY", "France": "EUR", "India": "INR"},
    "largest_city": {"Turkey": "Istanbul", "Japan": "Tokyo", "Canada": "Toronto"},
    "demonym": {"France": "French", "Japan": "Japanese"},
    "official_name": {"France": "French Republic", "Germany": "Federal Republic of Germany"},
    "name_in_german": {"Germany": "Deutschland", "Austria": "Österreich", "France": "Frankreich"},
    "name_in_french": {"Germany": "Allemagne", "Spain": "Espagne"},
    "name_in_spanish": {"Germany": "Alemania", "Japan": "Japón"},
    "city_timezone": {"Lyon": "Europe/Paris", "Chicago": "America/Chicago", "Osaka": "Asia/Tokyo"},
    "city_us_state": {"Chicago": "Illinois", "Houston": "Texas", "Seattle": "Washington"},
    "county_us_state": {"Los Angeles County": "California"},
    "airport_code": {"London Heathrow Airport": "LHR", "Charles de Gaulle International Airport": "CDG"},
    "airport_city": {"London Heathrow Airport": "London", "Charles de Gaulle International Airport": "Paris"},
    "airport_country": {"London Heathrow Airport": "United Kingdom"},
    "subdivision_country": {"Texas": "United States", "Bayern": "Germany"},
    "subdivision_code": {"Texas": "US-TX", "Bayern": "DE-BY"},
    "language_code": {"German": "de", "French": "fr", "Japanese": "ja"},
    "script_code": {"Cyrillic": "Cyrl", "Latin": "Latn"},
    "element_symbol": {"gold": "Au", "iron": "Fe", "sodium": "Na"},
    "element_number": {"gold": "79", "hydrogen": "1", "carbon": "6"},
}


def _read(out):
    records = {split: read_records(out / f"{split}.jsonl") for split in SPLITS}
    return records, json.loads((out / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = build_facts(tmp_path_factory.mktemp("facts") / "build")
    return (out, *_read(out))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = build_facts(tmp_path_factory.mktemp("facts") / "small", **SMALL)
    return (out, *_read(out))


@pytest.fixture(scope="module")
def by_relation(tmp_path_factory):
    out = build_facts(tmp_path_factory.mktemp("facts") / "rel", split_by="relation", **SMALL)
    return (out, *_read(out))


def _all(records):
    return [r for split in SPLITS for r in records[split]]


def _rendered(rel, subject, kind):
    return {t.format(s=subject) for t in RELATION_TEMPLATES[rel][kind]}


def test_templates_are_many_varied_and_split_into_train_and_heldout():
    assert len(RELATIONS) >= 20 and ORIGINAL_RELATIONS <= set(RELATIONS)
    assert tuple(SOURCES) == RELATIONS and set(KNOWN_FACTS) == set(RELATIONS)
    all_train, all_heldout = set(), set()
    for rel, groups in RELATION_TEMPLATES.items():
        train, heldout = groups["train"], groups["heldout"]
        assert len(train) + len(heldout) >= 10 and len(train) >= 5 and len(heldout) >= 3, rel
        assert len(set(train + heldout)) == len(train + heldout), rel
        questions = [t for t in train if t.startswith("Q:")]
        assert len(questions) == 1 and re.fullmatch(r"Q: .+\? A:", questions[0]), rel  # facts-qa's prompt
        assert any(t.startswith("Question:") for t in heldout), rel  # a held-out question form
        assert sum(not t.startswith(("Q:", "Question:")) for t in train) >= 5, rel  # cloze forms
        assert sum(not t.startswith(("Q:", "Question:")) for t in heldout) >= 2, rel
        for t in train + heldout:
            assert t.count("{s}") == 1 and t == t.strip() and "{" not in t.replace("{s}", ""), (rel, t)
        all_train |= set(train)
        all_heldout |= set(heldout)
    assert not all_train & all_heldout  # no relation's held-out wording is another's training wording


def test_default_build_counts(full):
    out, records, manifest = full
    counts = {split: Counter(r.relation for r in records[split]) for split in SPLITS}
    assert len(records["train"]) >= 20_000
    assert len(set(counts["train"])) >= 20 and set(counts["train"]) == set(RELATIONS)
    for rel in RELATIONS:
        assert all(counts[split][rel] > 0 for split in SPLITS), rel
        assert all(manifest["counts"][split][rel] == counts[split][rel] for split in SPLITS), rel
    total = sum(len(v) for v in records.values())
    assert manifest["total"] == total and 0.75 < len(records["train"]) / total < 0.85
    assert max(sum(counts[s][rel] for s in SPLITS) for rel in RELATIONS) < 0.25 * total  # varied
    assert counts["train"]["city_country"] + counts["val"]["city_country"] + counts["test"][
        "city_country"
    ] == (FactOptions().n_cities)
    assert manifest["builder_version"] == facts_mod.BUILDER_VERSION
    assert set(manifest["packages"]) == set(DATA_PACKAGES)
    assert manifest["sources"] == SOURCES and manifest["heldout_relations"] == {"val": [], "test": []}
    assert manifest["seed"] == 0 and manifest["options"]["n_locality"] == 2 and manifest["hash"]
    assert manifest["options"]["split_by"] == "subject"


def test_records_are_well_formed(full):
    _, records, _ = full
    everything = _all(records)
    assert len({r.id for r in everything}) == len(everything)
    values = defaultdict(set)
    for r in everything:
        values[r.relation].add(r.target_true)
    for r in everything:
        assert r.id == f"{r.relation}/{r.subject}"
        assert r.target_new != r.target_true and r.target_new in values[r.relation]
        assert r.target_true.strip() == r.target_true != "" and r.subject.strip() == r.subject != ""
        assert r.prompt in _rendered(r.relation, r.subject, "train")
        assert r.meta["source"] == SOURCES[r.relation] and r.meta["relation_in_train"] is True
        assert r.meta["form"] == ("question" if r.prompt.startswith("Q:") else "cloze")
    forms = Counter(r.meta["form"] for r in records["train"])
    assert forms["question"] > 0.08 * len(records["train"]) and forms["cloze"] > 0.7 * len(records["train"])
    languages = values["official_language"]
    assert not any("(" in lang for lang in languages)  # pycountry qualifiers stripped
    countries = {r.subject for r in everything if r.relation == "capital"}
    cities = [r.subject for r in everything if r.relation == "city_country"]
    assert len(cities) == len(set(cities)) and not set(cities) & countries


def test_known_facts_are_real():
    facts = collect_facts()
    for rel, expected in KNOWN_FACTS.items():
        assert expected and len(facts[rel]) >= 90, rel
        for subject, value in expected.items():
            assert facts[rel].get(subject) == value, (rel, subject, facts[rel].get(subject))
    for rel, table in facts.items():
        assert all(s and v and s.strip() == s and v.strip() == v for s, v in table.items()), rel
    assert all(re.fullmatch(r"\+\d{1,3}(-\d{3})?", v) for v in facts["calling_code"].values())
    assert all(re.fullmatch(r"\.[a-z]{2}", v) for v in facts["top_level_domain"].values())
    assert all(
        re.fullmatch(r"[A-Z]{3}", v) for rel in ("currency_code", "airport_code") for v in facts[rel].values()
    )
    assert all(re.fullmatch(r"[A-Z]{2}-\w{1,3}", v) for v in facts["subdivision_code"].values())
    assert sorted(map(int, facts["element_number"].values())) == list(range(1, 119))


def test_splits_are_disjoint_by_subject(full):
    _, records, _ = full
    subjects = {split: {r.subject for r in records[split]} for split in SPLITS}
    assert not subjects["train"] & subjects["val"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]


def test_heldout_templates_never_reach_training(full):
    _, records, _ = full
    for split in SPLITS:
        for r in records[split]:
            train_t = _rendered(r.relation, r.subject, "train")
            heldout_t = [t.format(s=r.subject) for t in RELATION_TEMPLATES[r.relation]["heldout"]]
            if split == "train":
                assert r.meta["templates"] == "train"
                assert r.rephrases == [
                    t.format(s=r.subject)
                    for t in RELATION_TEMPLATES[r.relation]["train"]
                    if t.format(s=r.subject) != r.prompt
                ]
                assert not ({r.prompt, *r.rephrases} | {item.prompt for item in r.locality}) & set(heldout_t)
            else:
                assert r.meta["templates"] == "heldout"
                assert r.rephrases == heldout_t  # only unseen wordings
                assert not set(r.rephrases) & train_t
    heldout_text = re.compile(
        "|".join(
            re.escape(t).replace(re.escape("{s}"), ".+")
            for groups in RELATION_TEMPLATES.values()
            for t in groups["heldout"]
        )
    )
    seen = {
        text for r in records["train"] for text in (r.prompt, *r.rephrases, *(i.prompt for i in r.locality))
    }
    assert not [text for text in seen if heldout_text.fullmatch(text)]


def test_locality_alternates_unrelated_facts_and_same_relation_neighbours(full):
    _, records, _ = full
    for split in SPLITS:
        facts = {}  # rendered training prompt -> (subject, relation, true answer)
        for r in records[split]:
            for t in RELATION_TEMPLATES[r.relation]["train"]:
                facts[t.format(s=r.subject)] = (r.subject, r.relation, r.target_true)
        for r in records[split]:
            assert len(r.locality) == 2 and len({item.prompt for item in r.locality}) == 2
            kinds = []
            for item in r.locality:
                assert item.prompt in facts, (split, item.prompt)
                subject, relation, answer = facts[item.prompt]
                assert subject != r.subject and item.answer == answer
                kinds.append(relation == r.relation)
            assert kinds == [False, True], (split, r.id)  # an unrelated fact, then a neighbour
            template = next(
                t for t in RELATION_TEMPLATES[r.relation]["train"] if t.format(s=r.subject) == r.prompt
            )
            neighbour = r.locality[1]
            assert neighbour.prompt == template.format(s=facts[neighbour.prompt][0])  # the edit's own wording


def test_relation_split_holds_relations_out_of_training(by_relation):
    _, records, manifest = by_relation
    relations = {split: {r.relation for r in records[split]} for split in SPLITS}
    held = heldout_relations(0, FactOptions(split_by="relation"))
    only = {
        split: relations[split] - relations["train"] - relations[({"val", "test"} - {split}).pop()]
        for split in ("val", "test")
    }
    for split in ("val", "test"):
        assert len(only[split]) >= 3 and only[split] == {rel for rel, s in held.items() if s == split}
        assert manifest["heldout_relations"][split] == sorted(only[split])
        assert not only[split] & relations["train"]
    assert len(relations["train"]) == len(RELATIONS) - len(held) >= 14
    for split in SPLITS:
        for r in records[split]:
            assert r.meta["relation_in_train"] == (r.relation not in held)
            assert r.meta["templates"] == ("train" if split == "train" else "heldout")
    seen = {split: {r.subject for r in records[split] if r.relation not in held} for split in SPLITS}
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"]  # the rest: by subject
    assert heldout_relations(1, FactOptions(split_by="relation")) != held  # seeded
    assert heldout_relations(0, FactOptions()) == {}


def test_relation_split_has_the_same_records_as_the_subject_split(by_relation, small):
    by_subject = {r.id: r for r in _all(small[1])}
    by_rel = {r.id: r for r in _all(by_relation[1])}
    assert by_rel.keys() == by_subject.keys()  # the same facts, only split differently
    assert {r.target_true for r in by_rel.values()} == {r.target_true for r in by_subject.values()}


def test_default_relation_split_keeps_most_records_for_training():
    options = FactOptions(split_by="relation")
    held = heldout_relations(0, options)
    facts = collect_facts()
    where = Counter(assign_split(s, 0, options, relation=rel) for rel, table in facts.items() for s in table)
    assert where["train"] >= 20_000
    for split in ("val", "test"):
        unseen = sum(len(facts[rel]) for rel, s in held.items() if s == split)
        assert 3 * 90 <= unseen < where[split]  # held-out relations, and seen relations' unseen subjects


def test_build_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "a"))
    first = build_facts(**SMALL)
    assert first.parent == tmp_path / "a" / "data" and first.name.startswith("facts-")
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "b"))
    facts_mod._collect_facts.cache_clear()  # read the packages again
    fact_sources.package_data.cache_clear()
    second = build_facts(**SMALL)
    assert first.name == second.name
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()

    def boom(*args, **kwargs):
        raise AssertionError("a complete build must be reused, not rebuilt")

    monkeypatch.setattr(facts_mod, "make_records", boom)
    assert build_facts(**SMALL) == second  # cache hit: nothing rebuilt
    with pytest.raises(AssertionError, match="reused"):
        build_facts(force=True, **SMALL)
    assert (second / "manifest.json").is_file()  # the failed forced rebuild left the old build intact
    assert sorted(p.name for p in second.parent.iterdir()) == [second.name]  # no temp dirs left behind


def test_seed_and_options_change_the_hash(tmp_path):
    base = build_facts(tmp_path / "s0", n_cities=50, **SMALL)
    other = build_facts(tmp_path / "s1", seed=1, n_cities=50, **SMALL)
    m0 = json.loads((base / "manifest.json").read_text())
    m1 = json.loads((other / "manifest.json").read_text())
    assert m0["hash"] != m1["hash"]
    assert (base / "train.jsonl").read_bytes() != (other / "train.jsonl").read_bytes()
    assert sum(m0["counts"][split]["city_country"] for split in SPLITS) == 40  # max_per_relation < n_cities
    assert facts_mod.facts_hash(0, n_cities=50, **SMALL) == m0["hash"] != facts_mod.facts_hash(0)
    assert facts_mod.facts_hash(0, split_by="relation") != facts_mod.facts_hash(0)
    few = build_facts(tmp_path / "few", n_cities=25, **SMALL)
    assert (
        sum(json.loads((few / "manifest.json").read_text())["counts"][s]["city_country"] for s in SPLITS)
        == 25
    )


def test_bad_options_and_foreign_out_dir(tmp_path):
    with pytest.raises(TypeError, match="n_city"):
        build_facts(tmp_path / "x", n_city=3)
    with pytest.raises(ValueError, match="split_by"):
        build_facts(tmp_path / "x", split_by="object")
    with pytest.raises(ValueError, match="max_per_relation"):
        FactOptions(max_per_relation=0)
    with pytest.raises(ValueError, match="lower val_fraction"):
        FactOptions(split_by="relation", val_fraction=0.45, test_fraction=0.45)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="mine"):
        build_facts(foreign, **SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_command_line(tmp_path, capsys):
    argv = [
        "--out",
        str(tmp_path / "cli"),
        "--seed",
        "3",
        "--max-per-relation",
        "30",
        "--split-by",
        "relation",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "city_country" in out and "element_symbol" in out and "total" in out and "train" in out
    assert "relations only in val:" in out and "relations only in test:" in out
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["options"]["split_by"] == "relation"
    assert manifest["options"]["max_per_relation"] == 30


def test_question_prompt_style_is_the_qa_setting(tmp_path, small):
    qa = build_facts(tmp_path / "qa", prompt_style="question", **SMALL)
    plain = small[1]
    for split in ("train", "test"):
        records = read_records(qa / f"{split}.jsonl")
        assert sorted(r.id for r in records) == sorted(r.id for r in plain[split])  # only the prompts differ
        for r in records:
            question = next(t for t in RELATION_TEMPLATES[r.relation]["train"] if t.startswith("Q:"))
            assert r.prompt == question.format(s=r.subject) and r.prompt not in r.rephrases
            assert r.meta["form"] == "question"
    with pytest.raises(ValueError, match="prompt_style"):
        build_facts(tmp_path / "bad", prompt_style="cloze")


def test_dataset_options_reach_the_builder(tmp_path, monkeypatch):
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path))
    options = {"split_by": "relation", **SMALL}
    dm = EditDataModule(dataset="facts", tokenizer="tiny-random-llama", dataset_options=options)
    assert dm.hparams.dataset_options == options
    out = dm.dataset_dir()
    assert out.name == f"facts-{facts_mod.facts_hash(0, **options)}"
    dm.setup("fit")
    dm.setup("test")
    relations = {split: {r.relation for r in dm.records(split)} for split in SPLITS}
    held = heldout_relations(0, FactOptions(split_by="relation"))
    for split in ("val", "test"):
        unseen = relations[split] - relations["train"]
        assert len(unseen) >= 3 and unseen == {rel for rel, s in held.items() if s == split}
    qa = EditDataModule(dataset="facts-qa", tokenizer="tiny-random-llama", dataset_options=SMALL)
    qa.setup("test")
    assert all(r.prompt.startswith("Q: ") for r in qa.records("test"))
    assert EditDataModule(dataset="facts", tokenizer="tiny-random-llama").hparams.dataset_options is None


def test_dataset_options_are_checked_at_construction(tmp_path):
    with pytest.raises(ConfigError, match=r"'split' for dataset 'facts'.*accepted options: .*split_by"):
        EditDataModule(dataset="facts", dataset_options={"split": "relation"})
    with pytest.raises(ConfigError, match="'prompt_style'"):  # fixed by the dataset's name
        EditDataModule(dataset="facts-qa", dataset_options={"prompt_style": "any"})
    with pytest.raises(ConfigError, match="split_by must be one of"):
        EditDataModule(dataset="facts", dataset_options={"split_by": "object"})
    with pytest.raises(ConfigError, match="subject only"):
        EditDataModule(dataset="claims", dataset_options={"split_by": "relation"})
    with pytest.raises(ConfigError, match="records directory"):
        EditDataModule(dataset=str(tmp_path), dataset_options={"split_by": "relation"})
    with pytest.raises(ConfigError, match="mapping"):
        check_dataset_options("facts", ["split_by"])
    assert check_dataset_options("facts", None) == {} == check_dataset_options(str(tmp_path), {})
    assert "split_by" in accepted_options("facts") and "prompt_style" not in accepted_options("facts-qa")
    assert "flip_prob" in accepted_options("claims") and "n_train" in accepted_options("generation")


def test_relations_option_builds_a_one_template_hard_case(tmp_path, capsys):
    out = build_facts(tmp_path / "one", prompt_style="question", relations=["city_country"], n_cities=300)
    records, manifest = _read(out)
    assert manifest["options"]["relations"] == ["city_country"]
    assert sum(len(v) for v in records.values()) == 300
    question = next(t for t in RELATION_TEMPLATES["city_country"]["train"] if t.startswith("Q:"))
    for r in _all(records):
        assert r.relation == "city_country" and r.prompt == question.format(s=r.subject)
        assert all(item.prompt.startswith("Q: ") for item in r.locality)  # neighbours only: one relation
    two = FactOptions(relations=["capital", "city_country", "capital"])
    assert two.relations == ("capital", "city_country")  # a sorted, de-duplicated tuple (hashable)
    # all relations (the default) keep the cache key, so the builds made before the option are reused
    assert "relations" not in facts_mod._cache_key(0, FactOptions())["options"]
    assert facts_mod.facts_hash(0, relations=["capital"]) != facts_mod.facts_hash(0)
    with pytest.raises(ValueError, match=r"unknown relation\(s\) \['capitol'\]"):
        FactOptions(relations=["capitol"])
    with pytest.raises(ValueError, match="non-empty list"):
        FactOptions(relations="capital")
    with pytest.raises(ValueError, match="choose more relations"):
        FactOptions(relations=["capital", "currency"], split_by="relation")
    with pytest.raises(ConfigError, match="unknown relation"):
        EditDataModule(dataset="facts-qa", dataset_options={"relations": ["capitol"]})
    argv = ["--out", str(tmp_path / "cli"), "--relations", "capital", "currency", "--max-per-relation", "50"]
    assert main(argv) == 0
    assert "capital" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["total"] == 100
    with pytest.raises(ValueError, match=r"leave the val and test split\(s\) empty"):
        build_facts(tmp_path / "tiny", relations=["capital"], max_per_relation=2)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "bad"), "--relations", "capitol"])
    assert "unknown relation(s) ['capitol']" in capsys.readouterr().err
