import json
from collections import Counter, defaultdict

import pytest

from mendlight.data import read_records
from mendlight.data.builders import claims as claims_mod
from mendlight.data.builders.claims import (
    ClaimOptions,
    build_claims,
    claim_pairs,
    claims_hash,
    main,
    make_claim_records,
    make_claims,
)
from mendlight.data.builders.facts import SPLITS, FactOptions, assign_split, collect_facts
from mendlight.data.builders.templates import CLAIM_TEMPLATES, RELATION_TEMPLATES
from mendlight.data.records import CLASS_LABELS


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = build_claims(tmp_path_factory.mktemp("claims") / "build")
    records = {split: read_records(out / f"{split}.jsonl") for split in SPLITS}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return out, records, manifest


def _all(records):
    return [r for split in SPLITS for r in records[split]]


def _claim_texts(rel, subject, value, kind):
    return {t.format(s=subject, o=value) for t in CLAIM_TEMPLATES[rel][kind]}


def test_claim_templates_are_declarative_and_split():
    assert set(CLAIM_TEMPLATES) <= set(RELATION_TEMPLATES)  # the claims cover the six original relations
    assert claims_mod.CLAIM_RELATIONS == tuple(CLAIM_TEMPLATES)
    for rel, groups in CLAIM_TEMPLATES.items():
        train, heldout = groups["train"], groups["heldout"]
        assert len(train) >= 4 and len(heldout) >= 2 and not set(train) & set(heldout), rel
        for t in train + heldout:
            assert t.count("{s}") == 1 and t.count("{o}") == 1 and t.endswith("."), (rel, t)
            assert not t.startswith(("Q:", "Question:")), (rel, t)


def test_records_are_valid_classification_claims(built):
    _, records, manifest = built
    everything = _all(records)
    assert len(everything) == manifest["total"] >= 3000
    assert len({r.id for r in everything}) == len(everything)
    facts = collect_facts(ClaimOptions().fact_options())
    pools = {rel: set(table.values()) for rel, table in facts.items()}
    for r in everything:
        assert r.task == "classification"
        assert r.target_true in CLASS_LABELS and r.target_new in CLASS_LABELS
        assert r.id == f"{r.relation}/{r.subject}/{r.target_true}"
        value, true = r.meta["value"], facts[r.relation][r.subject]
        assert r.meta["true_value"] == true and value in pools[r.relation]
        assert (value == true) == (r.target_true == "true")
        assert r.prompt in _claim_texts(r.relation, r.subject, value, "train")
        assert r.meta["flipped"] == (r.target_new != r.target_true)
        assert 1 <= len(r.locality) <= 2


def test_labels_are_balanced_in_every_split_and_relation(built):
    _, records, manifest = built
    for split in SPLITS:
        counts = Counter((r.relation, r.target_true) for r in records[split])
        for rel in CLAIM_TEMPLATES:
            assert counts[rel, "true"] == counts[rel, "false"] > 0, (split, rel)
            assert manifest["counts"][split][rel] == {
                "false": counts[rel, "false"],
                "true": counts[rel, "true"],
            }
    pairs = claim_pairs("val", build_dir=built[0])
    assert sum(y for _, y in pairs) * 2 == len(pairs)


def test_flip_rate_is_about_one_half_and_seeded(built):
    _, records, manifest = built
    everything = _all(records)
    flips = [r.target_new != r.target_true for r in everything]
    assert 0.45 < sum(flips) / len(flips) < 0.55
    for label in CLASS_LABELS:  # flips are independent of the gold label
        group = [f for f, r in zip(flips, everything, strict=True) if r.target_true == label]
        assert 0.43 < sum(group) / len(group) < 0.57
    assert manifest["flipped"] == {s: sum(r.meta["flipped"] for r in records[s]) for s in SPLITS}
    facts = collect_facts(ClaimOptions().fact_options())
    again = make_claim_records(facts, 0, ClaimOptions())
    assert [r.target_new for r in again["train"]] == [r.target_new for r in records["train"]]
    other = make_claim_records(facts, 1, ClaimOptions())
    assert {r.id: r.target_new for s in SPLITS for r in other[s]} != {r.id: r.target_new for r in everything}
    for prob, expected in ((0.0, False), (1.0, True)):
        recs = make_claim_records(facts, 0, ClaimOptions(flip_prob=prob))
        assert all((r.target_new != r.target_true) == expected for s in SPLITS for r in recs[s])


def test_splits_are_subject_disjoint_and_match_the_facts(built):
    _, records, _ = built
    subjects = {split: {r.subject for r in records[split]} for split in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not subjects[a] & subjects[b], (a, b)
        assert all(assign_split(s, 0, FactOptions()) == a for s in subjects[a])
    assert 0.7 < len(records["train"]) / sum(len(v) for v in records.values()) < 0.9


def test_rephrases_use_held_out_templates_outside_train(built):
    _, records, _ = built
    for split in SPLITS:
        for r in records[split]:
            value = r.meta["value"]
            if split == "train":
                expected = _claim_texts(r.relation, r.subject, value, "train") - {r.prompt}
                assert r.meta["templates"] == "train"
            else:
                expected = _claim_texts(r.relation, r.subject, value, "heldout")
                assert r.meta["templates"] == "heldout"
            assert set(r.rephrases) == expected and r.prompt not in r.rephrases


def test_locality_is_other_subjects_of_the_split_with_gold_labels(built):
    _, records, _ = built
    for split in SPLITS:
        gold = {}
        for r in records[split]:
            for text in _claim_texts(r.relation, r.subject, r.meta["value"], "train"):
                gold[text] = (r.target_true, r.subject, r.relation)
        both_labels = neighbours = 0
        for r in records[split]:
            answers = set()
            for item in r.locality:
                label, subject, relation = gold[item.prompt]
                assert item.answer == label and subject != r.subject
                answers.add(label)
                neighbours += relation == r.relation
            both_labels += answers == {"true", "false"}
        assert both_labels > 0.95 * len(records[split])
        assert neighbours > 0.9 * len(records[split])


def test_counterfactuals_are_seeded_values_of_the_same_relation():
    facts = collect_facts(ClaimOptions().fact_options())
    claims = make_claims(facts, 0)
    assert claims == make_claims(facts, 0) and claims != make_claims(facts, 1)
    by_fact = defaultdict(dict)
    for c in claims:
        by_fact[c.relation, c.subject][c.label] = c.value
    for (rel, subj), values in by_fact.items():
        assert values["true"] == facts[rel][subj] and values["false"] != values["true"]


def test_build_is_deterministic_cached_and_hashed(built, tmp_path, monkeypatch):
    out, _, manifest = built
    again = build_claims(tmp_path / "again")
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "manifest.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    stamp = (again / "train.jsonl").stat().st_mtime_ns
    assert build_claims(tmp_path / "again") == again
    assert (again / "train.jsonl").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert manifest["hash"] == claims_hash(0) != claims_hash(1) != claims_hash(0, flip_prob=0.3)
    assert manifest["builder_version"] == claims_mod.BUILDER_VERSION
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "cache"))
    default = build_claims()
    assert default == tmp_path / "cache" / "data" / f"claims-{claims_hash(0)}"
    assert (default / "val.jsonl").read_bytes() == (out / "val.jsonl").read_bytes()


def test_pairs_and_options(built):
    out = built[0]
    plain = claim_pairs("train", build_dir=out)
    with_rephrases = claim_pairs("train", build_dir=out, with_rephrases=True)
    assert len(with_rephrases) == 4 * len(plain) and set(plain) <= set(with_rephrases)
    assert {y for _, y in with_rephrases} == {0, 1}
    with pytest.raises(ValueError, match="unknown split"):
        claim_pairs("dev", build_dir=out)
    with pytest.raises(TypeError, match="unknown claim builder option"):
        build_claims(out, n_claims=3)
    with pytest.raises(ValueError, match="flip_prob"):
        ClaimOptions(flip_prob=1.5)
    with pytest.raises(ValueError, match="subject only"):
        ClaimOptions(split_by="relation")
    assert {r.relation for r in read_records(out / "test.jsonl")} == set(claims_mod.CLAIM_RELATIONS)


def test_refuses_to_overwrite_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="claim build"):
        build_claims(tmp_path)


def test_main_prints_counts(built, capsys):
    out, records, _ = built
    assert main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "claim dataset" in text and "city_country" in text and "edit label flipped" in text
    assert str(sum(len(v) for v in records.values())) in text
