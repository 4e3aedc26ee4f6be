import copy
import json

import pytest

from mendlight.data.formats import load
from mendlight.data.formats.common import FormatError
from mendlight.data.formats.counterfact import convert_counterfact
from mendlight.data.records import LocalityItem


def cases(fx):
    return json.loads((fx / "counterfact.json").read_text(encoding="utf-8"))


def write_cases(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_fixture_counts(fx):
    result = convert_counterfact(fx / "counterfact.json")
    assert result.format == "counterfact"
    assert result.n_read == 5
    assert [r.id for r in result.records] == ["0", "1", "2", "3"]
    assert dict(result.dropped) == {"target_new equals target_true": 1}  # case 4: Portugal -> Portugal
    assert result.notes["rephrases equal to the prompt removed"] == 1  # case 2 repeats its prompt


def test_record_fields(fx):
    case = cases(fx)[0]
    record = convert_counterfact(fx / "counterfact.json").records[0]
    assert record.prompt == "The mother tongue of Danielle Darrieux is"
    assert record.prompt == case["requested_rewrite"]["prompt"].format(case["requested_rewrite"]["subject"])
    assert record.target_new == "English"
    assert record.target_true == "French"
    assert record.subject == "Danielle Darrieux"
    assert record.relation == "P103"
    assert record.task == "completion"
    assert record.rephrases == case["paraphrase_prompts"]
    # Neighbourhood prompts share the true object: the edit must leave them answered with target_true.
    assert record.locality == [LocalityItem(p, "French") for p in case["neighborhood_prompts"]]
    assert record.locality[0].prompt == "The mother tongue of Léon Blum is"
    assert record.meta == {
        "format": "counterfact",
        "target_new_id": "Q1860",
        "target_true_id": "Q150",
        "attribute_prompts": case["attribute_prompts"],
        "generation_prompts": case["generation_prompts"],
        "pararel_idx": 2796,
    }


def test_subject_in_the_middle_or_start_of_the_template(fx):
    records = convert_counterfact(fx / "counterfact.json").records
    assert records[1].prompt == "Toko Yasuda plays the"
    assert records[2].prompt == "Autonomous University of Madrid, which is located in"
    assert records[2].rephrases == [cases(fx)[2]["paraphrase_prompts"][0]]
    assert [i.answer for i in records[3].locality] == ["Apple", "Apple"]


def test_optional_lists_and_ids(fx, tmp_path):
    data = cases(fx)[:2]
    for key in ("paraphrase_prompts", "neighborhood_prompts", "attribute_prompts", "generation_prompts"):
        del data[0][key]
    del data[0]["requested_rewrite"]["relation_id"]
    del data[0]["case_id"]
    data[1]["case_id"] = 0
    data[1]["neighborhood_prompts"] = ["Slash plays the", "  "]
    result = convert_counterfact(write_cases(tmp_path / "cf.json", data))
    first, second = result.records
    assert (first.rephrases, first.locality, first.relation) == ([], [], None)
    assert first.id == f"{tmp_path / 'cf.json'}[0]"  # no case_id: the list position
    assert second.id == "0"
    assert second.locality == [LocalityItem("Slash plays the", "guitar")]  # blank prompts are left out


def test_load_equals_converter(fx):
    assert (
        load("counterfact", fx / "counterfact.json").records
        == convert_counterfact(fx / "counterfact.json").records
    )


def _break(data, path, value):
    """Set (or delete, for ``...``) ``data[path[0]][path[1]]...``."""
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("requested_rewrite",), ..., r"cf\.json\[1\]: field 'requested_rewrite' must be an object"),
        (("requested_rewrite", "prompt"), ..., r"cf\.json\[1\]: missing field 'requested_rewrite\.prompt'"),
        (
            ("requested_rewrite", "prompt"),
            "Toko Yasuda plays the",
            r"'requested_rewrite\.prompt' must contain '\{\}' exactly once",
        ),
        (
            ("requested_rewrite", "prompt"),
            "{} and {} play",
            r"'requested_rewrite\.prompt' must contain '\{\}' exactly once",
        ),
        (
            ("requested_rewrite", "subject"),
            3,
            r"cf\.json\[1\]: field 'requested_rewrite\.subject' must be a non-empty string \(got 3\)",
        ),
        (
            ("requested_rewrite", "target_new"),
            "piano",
            r"cf\.json\[1\]: field 'requested_rewrite\.target_new' must be an object",
        ),
        (
            ("requested_rewrite", "target_true", "str"),
            ...,
            r"cf\.json\[1\]: missing field 'requested_rewrite\.target_true\.str'",
        ),
        (
            ("paraphrase_prompts",),
            "Toko Yasuda plays the",
            r"cf\.json\[1\]: field 'paraphrase_prompts' must be a list of strings",
        ),
        (
            ("neighborhood_prompts", 1),
            9,
            r"cf\.json\[1\]: field 'neighborhood_prompts\[1\]' must be a string \(got 9\)",
        ),
    ],
)
def test_bad_case_names_list_index_and_field(fx, tmp_path, path, value, message):
    data = copy.deepcopy(cases(fx))
    _break(data[1], path, value)
    with pytest.raises(FormatError, match=message):
        convert_counterfact(write_cases(tmp_path / "cf.json", data))


def test_bad_document(tmp_path):
    path = tmp_path / "cf.json"
    path.write_text('{"case_id": 0}', encoding="utf-8")
    with pytest.raises(
        FormatError, match=r"cf\.json: expected a JSON list of objects \(CounterFact .*got dict"
    ):
        convert_counterfact(path)
    path.write_text('[{"case_id": 0}, 5]', encoding="utf-8")
    with pytest.raises(FormatError, match=r"cf\.json\[1\]: expected a JSON object .*got int"):
        convert_counterfact(path)
    path.write_text('[\n  {"case_id": 0},\n  {"case_id": 1}\n  {"case_id": 2}\n]', encoding="utf-8")
    with pytest.raises(FormatError, match=r"cf\.json:4: invalid JSON \(Expecting ',' delimiter"):
        convert_counterfact(path)
    with pytest.raises(
        FileNotFoundError, match=r"multi_counterfact\.json: no such file; expected CounterFact"
    ):
        convert_counterfact(tmp_path / "multi_counterfact.json")
