import json
import os

import pytest

from mendlight.data import EditRecord, LocalityItem, RecordError, read_records, write_records
from mendlight.data.records import RECORD_KEYS


def _good(**overrides):
    record = {
        "prompt": "The capital of France is",
        "target_new": "Rome",
        "target_true": "Paris",
        "rephrases": ["Q: What is the capital of France? A:"],
        "locality": [{"prompt": "The capital of Peru is", "answer": "Lima"}],
        "subject": "France",
        "relation": "capital",
        "id": "capital/France",
        "meta": {"source": "test"},
    }
    record.update(overrides)
    return record


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _error_for(tmp_path, obj_or_line, line_no=2):
    """Write one good record, then the bad one on line ``line_no``; return the RecordError message."""
    bad = obj_or_line if isinstance(obj_or_line, str) else json.dumps(obj_or_line)
    lines = [json.dumps(_good(id="first"))] + [""] * (line_no - 2) + [bad]
    path = _write_lines(tmp_path / "x.jsonl", lines)
    with pytest.raises(RecordError) as info:
        read_records(path)
    return str(info.value)


def test_round_trip_preserves_every_field(tmp_path):
    records = [EditRecord.from_dict(_good(), "t"), EditRecord(prompt="a b", target_new="c", id="two")]
    path = write_records(tmp_path / "sub" / "r.jsonl", records)
    back = read_records(path)
    assert back == records
    assert isinstance(back[0].locality[0], LocalityItem)
    first_line = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert list(first_line) == list(RECORD_KEYS)


def test_to_dict_has_exactly_the_schema_keys():
    d = EditRecord(prompt="p", target_new="t").to_dict()
    assert list(d) == list(RECORD_KEYS)
    assert d["rephrases"] == [] and d["locality"] == [] and d["meta"] == {} and d["target_true"] is None


def test_minimal_record_defaults_and_default_ids(tmp_path):
    path = _write_lines(
        tmp_path / "mine.jsonl",
        [
            json.dumps({"prompt": "p1", "target_new": "t1"}),
            "",
            "   ",
            json.dumps({"prompt": "p2", "target_new": "t2"}),
        ],
    )
    records = read_records(path)
    assert [r.id for r in records] == ["mine:1", "mine:4"]  # blank lines skipped, ids use real line numbers
    assert records[0].rephrases == [] and records[0].locality == [] and records[0].meta == {}


def test_error_names_file_line_and_field(tmp_path):
    msg = _error_for(tmp_path, _good(target_new=3), line_no=7)
    assert f"{tmp_path / 'x.jsonl'}:7:" in msg
    assert "field 'target_new'" in msg and "non-empty string" in msg and "(got 3)" in msg
    assert "new target" in msg  # says what to do


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"target_new": None}, "target_new"),
        ({"target_true": ""}, "target_true"),
        ({"subject": 5}, "subject"),
        ({"id": ["a"]}, "id"),
        ({"rephrases": "just one"}, "rephrases"),
        ({"rephrases": ["ok", ""]}, "rephrases[1]"),
        ({"locality": {"prompt": "p", "answer": "a"}}, "locality"),
        ({"locality": [{"prompt": "p"}]}, "locality[0].answer"),
        ({"locality": [{"prompt": "p", "answer": ""}]}, "locality[0].answer"),
        ({"locality": ["p"]}, "locality[0]"),
        ({"meta": "x"}, "meta"),
    ],
)
def test_invalid_fields(tmp_path, override, field):
    msg = _error_for(tmp_path, _good(**override), line_no=3)
    assert ":3:" in msg
    assert f"'{field}" in msg


def test_missing_required_field(tmp_path):
    bad = _good()
    del bad["target_new"]
    msg = _error_for(tmp_path, bad)
    assert ":2:" in msg and "missing field 'target_new'" in msg


def test_unknown_key_lists_allowed_keys(tmp_path):
    bad = _good()
    bad["targt_new"] = bad.pop("target_new")
    msg = _error_for(tmp_path, bad)
    assert "'targt_new'" in msg and ":2:" in msg
    for key in RECORD_KEYS:
        assert key in msg


def test_unknown_locality_key(tmp_path):
    msg = _error_for(tmp_path, _good(locality=[{"prompt": "p", "answer": "a", "extra": 1}]))
    assert "locality[0]" in msg and "'extra'" in msg


def test_invalid_json_and_non_object(tmp_path):
    msg = _error_for(tmp_path, '{"prompt": "p", "target_new": ', line_no=4)
    assert ":4: invalid JSON (" in msg
    msg = _error_for(tmp_path, '["p", "t"]')
    assert ":2:" in msg and "JSON object" in msg


def test_empty_file_is_an_error(tmp_path):
    path = _write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(RecordError, match="empty.jsonl.*no records"):
        read_records(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_records(tmp_path / "nope.jsonl")


def test_duplicate_ids_name_both_lines(tmp_path):
    path = _write_lines(
        tmp_path / "d.jsonl",
        [json.dumps(_good(id="a")), json.dumps(_good(id="b")), json.dumps(_good(id="a"))],
    )
    with pytest.raises(RecordError) as info:
        read_records(path)
    msg = str(info.value)
    assert "d.jsonl:3:" in msg and "'id'" in msg and "line 1" in msg


def test_constructor_validates_and_converts_locality_dicts():
    rec = EditRecord(prompt="p", target_new="t", locality=[{"prompt": "lp", "answer": "la"}])
    assert rec.locality == [LocalityItem("lp", "la")]
    with pytest.raises(RecordError, match="target_new"):
        EditRecord(prompt="p", target_new="")
    with pytest.raises(RecordError, match=r"locality\[0\]\.answer"):
        EditRecord(prompt="p", target_new="t", locality=[{"prompt": "lp"}])


def test_from_dict_source_prefix():
    with pytest.raises(RecordError, match=r"^cli:1: field 'prompt'"):
        EditRecord.from_dict({"prompt": 1, "target_new": "t"}, "cli:1")


def test_write_records_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "out.jsonl"
    write_records(path, [EditRecord(prompt="p", target_new="t")])
    write_records(path, [EditRecord(prompt="p2", target_new="t2", target_true="é")])
    assert os.listdir(tmp_path) == ["out.jsonl"]
    assert read_records(path)[0].target_true == "é"
    with pytest.raises(ValueError, match="no records"):
        write_records(tmp_path / "none.jsonl", [])
    assert not (tmp_path / "none.jsonl").exists()


def test_task_defaults_to_completion_and_round_trips(tmp_path):
    record = EditRecord(
        prompt="Claim: Paris is in Italy.",
        target_new="true",
        target_true="false",
        task="classification",
        id="c1",
    )
    assert EditRecord(prompt="p", target_new="t").task == "completion"
    path = tmp_path / "cls.jsonl"
    write_records(path, [record])
    (back,) = read_records(path)
    assert back.task == "classification" and back.to_dict() == record.to_dict()


def test_classification_labels_are_checked(tmp_path):
    msg = _error_for(tmp_path, _good(task="classification", target_new="SUPPORTS"))
    assert "x.jsonl:2" in msg
    assert "'target_new'" in msg and "'false' or 'true'" in msg and "SUPPORTS" in msg
    msg = _error_for(tmp_path, _good(task="classification", target_new="true", target_true="false"))
    assert "'locality[0].answer'" in msg  # the fixture's locality answer "Lima" is not a label


def test_unknown_task_is_an_error(tmp_path):
    msg = _error_for(tmp_path, _good(task="regression"))
    assert "'task'" in msg and "completion, classification, generation" in msg


def test_generation_locality_may_score_whole_text():
    record = EditRecord(
        prompt="A passage that",
        target_new=" goes on",
        task="generation",
        locality=[LocalityItem("", "Some text.")],
    )
    assert record.locality[0].prompt == ""
    with pytest.raises(RecordError, match="only generation records may leave the prompt empty"):
        EditRecord(prompt="p", target_new="t", locality=[LocalityItem("", "Some text.")])


# ---------------------------------------------------------------------- line breaks, nesting, missing files


def test_only_newline_ends_a_line(tmp_path):
    """U+2028, U+2029 and U+0085 may occur in JSON strings: they neither break a record nor shift lines."""
    tricky = _good(id="tricky", prompt="Line\u2028separator,\u2029paragraph,\x85next line is")
    lines = [json.dumps(tricky, ensure_ascii=False), json.dumps(_good(id="second")), '{"prompt": "p",']
    path = _write_lines(tmp_path / "x.jsonl", lines)
    with pytest.raises(RecordError, match=r"x\.jsonl:3: invalid JSON"):  # not line 6
        read_records(path)
    path = _write_lines(tmp_path / "x.jsonl", lines[:2])
    first, second = read_records(path)
    assert first.prompt == tricky["prompt"] and second.id == "second"
    assert first.source == f"{path}:1" and second.source == f"{path}:2"


def test_crlf_files_read_with_the_right_line_numbers(tmp_path):
    path = tmp_path / "crlf.jsonl"
    lines = [
        json.dumps({"prompt": "p1", "target_new": "t1"}),
        "",
        json.dumps({"prompt": "p2", "target_new": "t2"}),
    ]
    path.write_bytes("\r\n".join(lines).encode("utf-8") + b"\r\n")
    assert [r.id for r in read_records(path)] == ["crlf:1", "crlf:3"]
    path.write_bytes(b"\r\n".join(line.encode() for line in [*lines, '{"prompt": 3, "target_new": "t"}']))
    with pytest.raises(RecordError, match=r"crlf\.jsonl:4: field 'prompt'"):
        read_records(path)


def test_write_records_escapes_line_breaks_and_lone_surrogates(tmp_path):
    text = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei\ud800j\udfffk"
    records = [
        EditRecord(prompt=text, target_new="t", id="one"),
        EditRecord(prompt="p", target_new=text, id="two"),
    ]
    path = write_records(tmp_path / "w.jsonl", records)
    raw = path.read_text(encoding="utf-8")
    assert len(raw.splitlines()) == 2  # any line-splitting reader sees two records
    assert "\\u2028" in raw and "\\u0085" in raw and "\\ud800" in raw and "\\udfff" in raw
    assert "é" in write_records(tmp_path / "e.jsonl", [EditRecord(prompt="é", target_new="t")]).read_text(
        encoding="utf-8"
    )  # other non-ASCII text stays readable
    assert read_records(path) == records


def test_source_is_not_a_record_field(tmp_path):
    path = write_records(tmp_path / "s.jsonl", [EditRecord(prompt="p", target_new="t", id="a")])
    (record,) = read_records(path)
    assert record.source == f"{path}:1"
    assert record == EditRecord(prompt="p", target_new="t", id="a")  # source takes no part in ==
    assert "source" not in record.to_dict() and "source" not in repr(record)
    assert "source" not in path.read_text(encoding="utf-8")
    write_records(path, [record])
    assert "source" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[" * 100_000, "nesting too deep"),
        ('{"prompt": ' + "[" * 5000 + "]" * 5000 + ', "target_new": "t"}', "nesting too deep"),
        ('{"prompt": "p", "target_new": "t", "meta": {"n": ' + "1" * 5000 + "}}", "Exceeds the limit"),
    ],
)
def test_unparseable_json_names_file_and_line(tmp_path, line, message):
    msg = _error_for(tmp_path, line, line_no=3)
    assert f"{tmp_path / 'x.jsonl'}:3: invalid JSON (" in msg and message in msg
    assert "each line must hold one JSON object" in msg


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps(_good()).encode() + b'\n\n{"prompt": "\xff", "target_new": "t"}\n')
    with pytest.raises(RecordError, match=r"bad\.jsonl:3: not valid UTF-8 .*save the file as UTF-8"):
        read_records(path)


def test_missing_file_is_a_user_input_error(tmp_path):
    from mendlight.data.records import RecordFileNotFoundError
    from mendlight.errors import UserInputError

    with pytest.raises(RecordFileNotFoundError) as info:
        read_records(tmp_path / "nope.jsonl")
    err = info.value
    assert (
        isinstance(err, RecordError)
        and isinstance(err, UserInputError)
        and isinstance(err, FileNotFoundError)
    )
    expected = "no such records file; expected a JSONL file with one edit record per line"
    assert str(err) == f"{tmp_path / 'nope.jsonl'}: {expected}"
