import pytest

from mendlight.data.formats import load
from mendlight.data.formats.common import FormatError
from mendlight.data.formats.fever import convert_fever_kilt

LABEL = {"SUPPORTS": "true", "REFUTES": "false"}
OTHER = {"SUPPORTS": "REFUTES", "REFUTES": "SUPPORTS"}


def fever_row(i, gold="SUPPORTS", prediction="SUPPORTS", **fields):
    """A FEVER line of KnowledgeEditor's release with ``fields`` overriding the defaults."""
    row = {
        "id": str(1000 + i),
        "input": f"Claim number {i} is true.",
        "output": [{"answer": gold, "provenance": []}],
        "meta": {},
        "prediction": prediction,
        "alternatives": [OTHER.get(prediction, "REFUTES")],
        "logit": 1.5,
        "filtered_rephrases": [f"Claim {i} holds."],
    }
    row.update(fields)
    return {k: v for k, v in row.items() if v is not ...}


def many_rows(n):
    return [fever_row(i, gold=g, prediction=p) for i, (g, p) in enumerate(_labels(n))]


def _labels(n):
    pairs = [
        ("SUPPORTS", "SUPPORTS"),
        ("REFUTES", "REFUTES"),
        ("SUPPORTS", "REFUTES"),
        ("REFUTES", "SUPPORTS"),
    ]
    return [pairs[i % 4] for i in range(n)]


def test_fixture_counts_and_classification_records(fx):
    result = convert_fever_kilt(fx / "fever_dev_kilt.jsonl")
    assert result.format == "fever-kilt"
    assert result.n_read == 6
    assert [r.id for r in result.records] == ["137334", "111897", "89891", "204443"]
    assert dict(result.dropped) == {"no alternatives": 1, "no rephrases": 1}
    assert result.notes["rephrases equal to the prompt removed"] == 1  # 204443 repeats its claim
    for record in result.records:
        assert record.task == "classification"
        assert record.target_new in ("true", "false")
        assert record.target_true in ("true", "false")
        assert all(item.answer in ("true", "false") for item in record.locality)
    assert [r.target_true for r in result.records] == ["true", "true", "false", "true"]  # the gold labels


def test_fixture_record_fields(fx, fixture_lines):
    lines = {line["id"]: line for line in fixture_lines("fever_dev_kilt.jsonl")}
    result = convert_fever_kilt(fx / "fever_dev_kilt.jsonl", seed=0)
    for record in result.records:
        line = lines[record.id]
        assert record.prompt == line["input"]
        assert record.prompt not in record.rephrases
        assert record.rephrases == [r for r in line["filtered_rephrases"] if r != line["input"]]
        meta = record.meta
        assert meta["prediction"] == line["prediction"]
        assert meta["logit"] == line["logit"]
        assert meta["edit_from"] == "prediction"
        edit = line["alternatives"][0] if meta["flipped"] else line["prediction"]
        assert record.target_new == LABEL[edit]
        assert meta["cond"] == f"{line['prediction']} >> {edit} || {line['input']}"
    boston = result.records[3]
    assert boston.rephrases == ["The Boston Celtics play home games at TD Garden."]
    assert result.notes["edits flipped"] == sum(r.meta["flipped"] for r in result.records)


def test_locality_is_other_claims_with_gold_labels(fx):
    records = convert_fever_kilt(fx / "fever_dev_kilt.jsonl", n_loc=2).records
    gold = {r.prompt: r.target_true for r in records}
    for record in records:
        assert len(record.locality) == 2
        for item in record.locality:
            assert item.prompt != record.prompt
            assert item.answer == gold[item.prompt]
    assert all(r.locality == [] for r in convert_fever_kilt(fx / "fever_dev_kilt.jsonl", n_loc=0).records)


def test_flip_rate_is_about_one_half(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "fever.jsonl", many_rows(400))
    for seed in (0, 1):
        result = convert_fever_kilt(path, seed=seed, n_loc=0)
        assert len(result.records) == 400
        flips = [r.meta["flipped"] for r in result.records]
        assert 0.4 <= sum(flips) / len(flips) <= 0.6  # Bernoulli(0.5): 4 standard deviations either side
        assert result.notes["edits flipped"] == sum(flips)
        for record, (_, prediction) in zip(result.records, _labels(400), strict=True):
            expected = OTHER[prediction] if record.meta["flipped"] else prediction
            assert record.target_new == LABEL[expected]
        # The edit label equals the prediction exactly when there was no flip.
        kept = [r.target_new == LABEL[r.meta["prediction"]] for r in result.records]
        assert kept == [not f for f in flips]


def test_flips_are_deterministic_and_change_with_the_seed(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "fever.jsonl", many_rows(200))

    def flips(seed):
        return [r.meta["flipped"] for r in convert_fever_kilt(path, seed=seed, n_loc=0).records]

    assert flips(0) == flips(0)
    assert flips(5) == flips(5)
    differ = sum(a != b for a, b in zip(flips(0), flips(1), strict=True))
    assert 50 <= differ <= 150  # independent coins: about half of them differ
    # A record's coin does not depend on the other rows of the file.
    part = write_jsonl(tmp_path / "part.jsonl", many_rows(200)[150:])
    assert [r.meta["flipped"] for r in convert_fever_kilt(part, seed=0, n_loc=0).records] == flips(0)[150:]


def test_edit_from_label_flips_the_gold_label(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "fever.jsonl", many_rows(200))
    result = convert_fever_kilt(path, edit_from="label", n_loc=0)
    assert 0.35 <= result.notes["edits flipped"] / 200 <= 0.65
    for record in result.records:
        assert record.meta["edit_from"] == "label"
        flipped = record.target_new != record.target_true
        assert flipped == record.meta["flipped"]
    # Without predictions, the label mode still works.
    row = fever_row(0)
    del row["prediction"]
    no_pred = write_jsonl(tmp_path / "np.jsonl", [row])
    record = convert_fever_kilt(no_pred, edit_from="label").records[0]
    assert "prediction" not in record.meta
    assert record.target_true == "true"
    with pytest.raises(FormatError, match=r"np\.jsonl:1: field 'prediction' must be 'SUPPORTS' or 'REFUTES'"):
        convert_fever_kilt(no_pred)  # the prediction mode needs it


def test_unknown_edit_from(fx):
    with pytest.raises(ValueError, match="edit_from must be one of prediction, label, got 'gold'"):
        convert_fever_kilt(fx / "fever_dev_kilt.jsonl", edit_from="gold")


def test_load_equals_converter(fx):
    path = fx / "fever_dev_kilt.jsonl"
    assert load("fever-kilt", path, seed=4).records == convert_fever_kilt(path, seed=4).records


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input": ...}, r"f\.jsonl:2: missing field 'input' \(the claim\)"),
        (
            {"output": [{"answer": "NOT ENOUGH INFO"}]},
            r"f\.jsonl:2: field 'output\[0\]\.answer' must be 'SUPPORTS'",
        ),
        (
            {"alternatives": ["MAYBE"]},
            r"f\.jsonl:2: field 'alternatives\[0\]' must be 'SUPPORTS' or 'REFUTES'",
        ),
        ({"alternatives": ...}, r"f\.jsonl:2: missing field 'alternatives'"),
        ({"filtered_rephrases": "x"}, r"f\.jsonl:2: field 'filtered_rephrases' must be a list of strings"),
        ({"prediction": "supports"}, r"f\.jsonl:2: field 'prediction' must be 'SUPPORTS' or 'REFUTES'"),
    ],
)
def test_bad_field_names_file_line_and_field(tmp_path, write_jsonl, fields, message):
    path = write_jsonl(tmp_path / "f.jsonl", [fever_row(0), fever_row(1, **fields)])
    with pytest.raises(FormatError, match=message):
        convert_fever_kilt(path)


def test_invalid_json_line_and_missing_file(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "f.jsonl", [fever_row(0), "{not json}"])
    with pytest.raises(
        FormatError, match=r"f\.jsonl:2: invalid JSON .*FEVER as released with KnowledgeEditor"
    ):
        convert_fever_kilt(path)
    with pytest.raises(FileNotFoundError, match=r"gone\.jsonl: no such file"):
        convert_fever_kilt(tmp_path / "gone.jsonl")
