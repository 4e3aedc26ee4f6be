import json

import pytest

from mendlight.data.formats import LOCALITY_FORMATS
from mendlight.data.formats.common import FormatError
from mendlight.data.formats.nq import attach_nq, nq_hub_item, process_question, read_nq
from mendlight.data.records import EditRecord, LocalityItem


def write_json(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_read_nq_fixture_in_file_order(fx):
    items = read_nq(fx / "nq_validation.json")
    assert len(items) == 6
    assert items[0] == LocalityItem("Who sang the theme song for the fresh prince of bel air?", "Will Smith")
    assert items[-1] == LocalityItem("Where is the world's tallest building located?", "Dubai")
    assert read_nq(str(fx / "nq_validation.json")) == items
    assert LOCALITY_FORMATS["nq"] is read_nq


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], r"nq\.json: expected an NQ locality file: .* got a JSON list"),
        ({"questions": ["Q?"]}, r"nq\.json: missing field 'answers'"),
        ({"questions": "Q?", "answers": ["A"]}, r"nq\.json: field 'questions' must be a list of strings"),
        (
            {"questions": ["Q?", 2], "answers": ["A", "B"]},
            r"nq\.json: field 'questions\[1\]' must be a non-empty string \(got 2\)",
        ),
        (
            {"questions": ["Q?"], "answers": [""]},
            r"nq\.json: field 'answers\[0\]' must be a non-empty string",
        ),
        (
            {"questions": ["Q?", "R?"], "answers": ["A"]},
            r"fields 'questions' \(2\) and 'answers' \(1\) must have the same length",
        ),
        ({"questions": [], "answers": []}, r"nq\.json: field 'questions' is empty"),
    ],
)
def test_read_nq_errors_name_the_field(tmp_path, data, message):
    with pytest.raises(FormatError, match=message):
        read_nq(write_json(tmp_path / "nq.json", data))


def test_read_nq_missing_file_and_bad_json(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"validation\.json: no such file; expected an NQ locality file"
    ):
        read_nq(tmp_path / "validation.json")
    path = tmp_path / "nq.json"
    path.write_text('{"questions": ["a"],\n "answers": ["b"]', encoding="utf-8")
    with pytest.raises(FormatError, match=r"nq\.json:2: invalid JSON"):
        read_nq(path)


def test_process_question():
    assert process_question("who wrote hamlet") == "Who wrote hamlet?"
    assert process_question("who wrote hamlet", prefix=True) == "nq question: Who wrote hamlet?"


def test_nq_hub_item_natural_questions_layout():
    row = {
        "id": "1",
        "question": {"text": "who sang the theme song for the fresh prince of bel air", "tokens": []},
        "annotations": {
            "id": ["a", "b", "c"],
            "short_answers": [
                {"start_token": [1], "text": ["Will Smith and DJ Jazzy Jeff"]},
                {"start_token": [], "text": []},  # an annotation without a short answer
                {"start_token": [2, 3], "text": ["Will Smith", "DJ Jazzy Jeff"]},  # its first text counts
            ],
        },
    }
    item = nq_hub_item(row, "hub:natural_questions[validation]:0")
    assert item == LocalityItem("Who sang the theme song for the fresh prince of bel air?", "Will Smith")
    assert nq_hub_item(row, "w", prefix=True).prompt.startswith("nq question: Who sang")


def test_nq_hub_item_without_short_answer_is_dropped():
    row = {"question": {"text": "why"}, "annotations": {"short_answers": [{"text": []}, {"text": []}]}}
    assert nq_hub_item(row, "w") is None
    assert nq_hub_item({"question": {"text": "why"}, "annotations": None}, "w") is None
    assert nq_hub_item({"question": "why", "answer": []}, "w") is None


def test_nq_hub_item_nq_open_layout():
    item = nq_hub_item({"question": "where is dubai", "answer": ["the United Arab Emirates", "UAE"]}, "w")
    assert item == LocalityItem("Where is dubai?", "UAE")


def test_nq_hub_item_errors():
    with pytest.raises(FormatError, match=r"hub:nq_open\[validation\]:4: missing field 'question\.text'"):
        nq_hub_item({"answer": ["x"]}, "hub:nq_open[validation]:4")
    with pytest.raises(
        FormatError, match=r"w: missing field 'annotations\.short_answers' \(or 'answer' for nq_open\)"
    ):
        nq_hub_item({"question": "q"}, "w")


def test_attach_nq_is_seeded_per_record(fx):
    items = read_nq(fx / "nq_validation.json")
    records = [EditRecord(f"Question {i}?", "x", id=f"r{i}") for i in range(5)]
    attach_nq(records, items, n=2, seed=0)
    assert all(len(r.locality) == 2 and all(i in items for i in r.locality) for r in records)
    alone = attach_nq([EditRecord("Question 3?", "x", id="r3")], items, n=2, seed=0)
    assert alone[0].locality == records[3].locality
    other_seed = [
        attach_nq([EditRecord("Q?", "x", id="r3")], items, n=2, seed=s)[0].locality for s in range(8)
    ]
    assert len({tuple(i.prompt for i in loc) for loc in other_seed}) > 1
