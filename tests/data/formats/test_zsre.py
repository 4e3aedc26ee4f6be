import json
import random

import pytest

from mendlight.data.formats import load
from mendlight.data.formats.common import FormatError
from mendlight.data.formats.nq import read_nq
from mendlight.data.formats.zsre import convert_zsre_kilt, convert_zsre_mend, loc_question
from mendlight.data.records import LocalityItem

MOUNT_ANDREWS = "5a7f0c2e-0d8b-4a3c-9f4e-1b2c3d4e5f60"


def kilt_row(i, **fields):
    """A KILT zsRE line of De Cao's release with ``fields`` overriding the defaults."""
    row = {
        "id": f"q{i}",
        "input": f"Which country is Place {i} in?",
        "output": [{"answer": f"Gold {i}", "provenance": []}],
        "prediction": f"Pred {i}",
        "alternatives": [f"Alt {i}a", f"Alt {i}b", f"Alt {i}c"],
        "filtered_rephrases": [f"In which country is Place {i}?"],
    }
    row.update(fields)
    return {k: v for k, v in row.items() if v is not ...}


# ---------------------------------------------------------------------- KILT form


def test_kilt_fixture_counts_and_drop_reasons(fx):
    result = convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl")
    assert result.format == "zsre-kilt"
    assert result.source == str(fx / "zsre_kilt_dev.jsonl")
    assert result.n_read == 7
    assert len(result.records) == 3
    # Lake Titicaca (no alternatives) and Serena Williams (neither: counted as no alternatives); Goodbye
    # Yellow Brick Road (no rephrases) and Beethoven (its only rephrase is the input itself).
    assert dict(result.dropped) == {"no alternatives": 2, "no rephrases": 2}
    assert result.n_dropped == 4
    assert result.notes["rephrases equal to the prompt removed"] == 2
    prompts = [r.prompt for r in result.records]
    assert prompts == [
        "Which continent is Mount Andrews on?",
        "What is the native language of Danielle Darrieux?",
        "What is the official language of Brazil?",
    ]


def test_kilt_record_fields(fx, fixture_lines):
    line = fixture_lines("zsre_kilt_dev.jsonl")[0]
    record = convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl", seed=0).records[0]
    assert record.id == MOUNT_ANDREWS
    assert record.prompt == line["input"]
    assert record.task == "completion"
    assert record.target_true == "Antarctica" == line["output"][0]["answer"]
    assert record.target_new in line["alternatives"]
    assert record.target_new != record.target_true
    # The input is removed from its own rephrases; the others keep their order.
    assert record.rephrases == [
        "On which continent is Mount Andrews located?",
        "Mount Andrews is located on which continent?",
    ]
    assert record.meta["prediction"] == "Antarctica"
    assert record.meta["alternatives"] == ["Africa", "Europe", "Asia"]
    assert record.meta["cond"] == f"Antarctica >> {record.target_new} || Which continent is Mount Andrews on?"


def test_kilt_target_is_gold_answer_not_prediction(fx, tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "z.jsonl", [kilt_row(0, prediction="Wrong guess")])
    record = convert_zsre_kilt(path).records[0]
    assert record.target_true == "Gold 0"
    assert record.meta["prediction"] == "Wrong guess"
    assert record.meta["cond"].startswith("Wrong guess >> ")


def test_kilt_new_target_is_a_seeded_draw_from_the_alternatives(fx):
    path = fx / "zsre_kilt_dev.jsonl"
    for seed in (0, 1, 7):
        first = convert_zsre_kilt(path, seed=seed).records
        again = convert_zsre_kilt(path, seed=seed).records
        assert [r.target_new for r in first] == [r.target_new for r in again]
        for r in first:
            assert r.target_new == random.Random(f"{seed}/{r.id}").choice(r.meta["alternatives"])
    drawn = {convert_zsre_kilt(path, seed=seed).records[0].target_new for seed in range(30)}
    assert drawn == {"Africa", "Europe", "Asia"}  # the seed changes the draw, over all alternatives


def test_kilt_draw_does_not_depend_on_other_rows(tmp_path, write_jsonl):
    rows = [kilt_row(i) for i in range(6)]
    full = convert_zsre_kilt(write_jsonl(tmp_path / "full.jsonl", rows), seed=3).records
    part = convert_zsre_kilt(write_jsonl(tmp_path / "part.jsonl", rows[3:][::-1]), seed=3).records
    assert {r.id: r.target_new for r in part} == {
        r.id: r.target_new for r in full if r.id in {"q3", "q4", "q5"}
    }


def test_kilt_alternative_equal_to_the_gold_answer_is_noted(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "z.jsonl", [kilt_row(0, alternatives=["Gold 0"]), kilt_row(1)])
    result = convert_zsre_kilt(path)
    assert result.records[0].target_new == result.records[0].target_true == "Gold 0"
    assert result.notes["new target equals the gold answer"] == 1


def test_kilt_blank_alternatives_count_as_none(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "z.jsonl", [kilt_row(0, alternatives=["", "  "]), kilt_row(1)])
    result = convert_zsre_kilt(path)
    assert [r.id for r in result.records] == ["q1"]
    assert result.dropped == {"no alternatives": 1}


def test_kilt_default_locality_is_other_questions_with_gold_answers(fx):
    records = convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl", n_loc=1).records
    gold = {r.prompt: r.target_true for r in records}
    for record in records:
        assert len(record.locality) == 1
        item = record.locality[0]
        assert item.prompt != record.prompt
        assert gold[item.prompt] == item.answer  # another kept question, answered with its gold answer
    two = convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl", n_loc=5).records
    assert all(len(r.locality) == 2 for r in two)  # only the two other records are usable
    assert all(r.locality == [] for r in convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl", n_loc=0).records)


def test_kilt_nq_option_gives_nq_locality(fx):
    nq_items = read_nq(fx / "nq_validation.json")
    result = convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl", nq=fx / "nq_validation.json", n_loc=2, seed=0)
    for record in result.records:
        assert len(record.locality) == 2
        assert len({item.prompt for item in record.locality}) == 2  # drawn without replacement
        assert all(item in nq_items for item in record.locality)
    again = convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl", nq=str(fx / "nq_validation.json"), n_loc=2, seed=0)
    assert [r.locality for r in again.records] == [r.locality for r in result.records]
    # Items can be given directly, too.
    items = [LocalityItem("Who is A?", "B")]
    direct = convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl", nq=items, n_loc=3)
    assert all(r.locality == items for r in direct.records)


def test_kilt_default_and_repeated_ids(tmp_path, write_jsonl):
    rows = [kilt_row(0, id=...), "", kilt_row(1, id="same"), kilt_row(2, id="same")]
    records = convert_zsre_kilt(write_jsonl(tmp_path / "dev_rows.jsonl", rows)).records
    assert [r.id for r in records] == ["dev_rows:1", "same", "same~2"]


def test_kilt_load_equals_converter(fx):
    assert load("zsre-kilt", fx / "zsre_kilt_dev.jsonl", seed=2).records == (
        convert_zsre_kilt(fx / "zsre_kilt_dev.jsonl", seed=2).records
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input": ...}, r"z\.jsonl:2: missing field 'input' \(the question x_e\)"),
        ({"input": 12}, r"z\.jsonl:2: field 'input' must be a non-empty string \(got 12\)"),
        ({"output": ...}, r"z\.jsonl:2: field 'output' must be a non-empty list"),
        ({"output": [{"answer": ""}]}, r"z\.jsonl:2: field 'output\[0\]\.answer' must be a non-empty string"),
        ({"alternatives": ...}, r"z\.jsonl:2: missing field 'alternatives' \(De Cao's annotated zsRE"),
        ({"alternatives": "Africa"}, r"z\.jsonl:2: field 'alternatives' must be a list of strings"),
        ({"filtered_rephrases": ...}, r"z\.jsonl:2: missing field 'filtered_rephrases'"),
        ({"filtered_rephrases": ["ok", 3]}, r"z\.jsonl:2: field 'filtered_rephrases\[1\]' must be a string"),
    ],
)
def test_kilt_bad_field_names_file_line_and_field(tmp_path, write_jsonl, fields, message):
    path = write_jsonl(tmp_path / "z.jsonl", [kilt_row(0), kilt_row(1, **fields)])
    with pytest.raises(FormatError, match=message):
        convert_zsre_kilt(path)


def test_kilt_invalid_json_line_and_missing_file(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "z.jsonl", [kilt_row(0), kilt_row(1), '{"input": "Q?", "output": ['])
    with pytest.raises(
        FormatError, match=r"z\.jsonl:3: invalid JSON \(.*column \d+\); zsRE as released with KnowledgeEditor"
    ):
        convert_zsre_kilt(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl: no such file; expected zsRE as released"):
        convert_zsre_kilt(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------------- derived form


def test_mend_fixture_field_mapping(fx):
    result = convert_zsre_mend(fx / "zsre_mend_eval.json")
    assert result.format == "zsre-mend"
    assert result.n_read == 5
    assert dict(result.dropped) == {"empty alt": 1}  # Lake Titicaca has alt ""
    assert [r.id for r in result.records] == [
        "zsre_mend_eval:0",
        "zsre_mend_eval:1",
        "zsre_mend_eval:3",
        "zsre_mend_eval:4",
    ]
    first = result.records[0]
    assert first.prompt == "What university did Watts Humphrey attend?"
    assert first.target_new == "University of Michigan"
    assert first.target_true == "Illinois Institute of Technology"
    assert first.rephrases == ["What university did Watts Humphrey take part in?"]
    assert first.subject == "Watts Humphrey"
    assert first.locality == [
        LocalityItem("Who played desmond doss father in hacksaw ridge?", "Hugo Weaving")
    ]
    assert first.meta["cond"].startswith("Trinity College >> University of Michigan")
    assert result.records[3].target_true == "DJM Records"  # answers[0]


def test_mend_rephrase_equal_to_src_is_removed(fx):
    result = convert_zsre_mend(fx / "zsre_mend_eval.json")
    darrieux = result.records[2]
    assert darrieux.subject == "Danielle Darrieux"
    assert darrieux.rephrases == []
    assert result.notes["rephrases equal to the prompt removed"] == 1


def test_mend_loc_styles(fx):
    prompts = {
        style: convert_zsre_mend(fx / "zsre_mend_eval.json", loc_style=style).records[1].locality[0].prompt
        for style in ("nq", "easyedit", "rome")
    }
    assert prompts == {
        "nq": "When was the last time the philadelphia won the superbowl?",
        "easyedit": "nq question: when was the last time the philadelphia won the superbowl",
        "rome": "nq question: when was the last time the philadelphia won the superbowl?",
    }
    assert loc_question("nq question: is it?", "nq", "w") == "Is it?"  # no second "?"
    with pytest.raises(ValueError, match="loc_style must be one of nq, easyedit, rome, got 'plain'"):
        convert_zsre_mend(fx / "zsre_mend_eval.json", loc_style="plain")


def mend_rows(fx, i, **fields):
    rows = json.loads((fx / "zsre_mend_eval.json").read_text(encoding="utf-8"))
    rows[i].update(fields)
    for key in [k for k, v in fields.items() if v is ...]:
        del rows[i][key]
    return rows


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"src": ...}, r"m\.json\[1\]: missing field 'src'"),
        ({"alt": ...}, r"m\.json\[1\]: field 'alt' must be a string \(got None\)"),
        ({"alt": ["Africa"]}, r"m\.json\[1\]: field 'alt' must be a string"),
        ({"answers": []}, r"m\.json\[1\]: field 'answers' must hold at least one non-empty answer"),
        ({"answers": "Antarctica"}, r"m\.json\[1\]: field 'answers' must be a list of strings"),
        ({"rephrase": ...}, r"m\.json\[1\]: missing field 'rephrase'"),
        ({"loc": "who won the superbowl"}, r"m\.json\[1\]: field 'loc' must start with 'nq question: '"),
        ({"loc_ans": 5}, r"m\.json\[1\]: field 'loc_ans' must be a non-empty string \(got 5\)"),
        ({"subject": ""}, r"m\.json\[1\]: field 'subject' must be a non-empty string"),
    ],
)
def test_mend_bad_field_names_list_index_and_field(fx, tmp_path, fields, message):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(mend_rows(fx, 1, **fields)), encoding="utf-8")
    with pytest.raises(FormatError, match=message):
        convert_zsre_mend(path)


def test_mend_not_a_list_and_bad_json(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"src": "Q?"}', encoding="utf-8")
    with pytest.raises(FormatError, match=r"m\.json: expected a JSON list of objects .*got dict"):
        convert_zsre_mend(path)
    path.write_text('[\n{"src": "Q?"},\n{"src" "Q?"}\n]', encoding="utf-8")
    with pytest.raises(FormatError, match=r"m\.json:3: invalid JSON"):
        convert_zsre_mend(path)
    with pytest.raises(FileNotFoundError, match=r"none\.json: no such file; expected zsRE derived form"):
        convert_zsre_mend(tmp_path / "none.json")
