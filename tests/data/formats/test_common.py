import json
from collections import Counter

import pytest

from mendlight.data.formats.common import (
    Conversion,
    FormatError,
    as_object,
    clean_rephrases,
    kilt_answer,
    list_rows,
    read_json,
    read_jsonl,
    req_str,
    str_list,
    unique_ids,
)
from mendlight.data.records import EditRecord, RecordError

LAYOUT = "the test layout"


def test_format_error_is_a_record_error():
    assert issubclass(FormatError, RecordError)
    assert issubclass(FormatError, ValueError)


def test_read_jsonl_rows_name_file_and_line_and_skip_blank_lines(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "a.jsonl", [{"x": 1}, "", "   ", {"x": 2}])
    rows = read_jsonl(path, LAYOUT)
    assert rows == [(f"{path}:1", {"x": 1}), (f"{path}:4", {"x": 2})]


def test_read_jsonl_invalid_json_names_the_line_and_column(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "a.jsonl", [{"x": 1}, {"x": 2}, '{"x": 3,'])
    with pytest.raises(FormatError) as err:
        read_jsonl(path, LAYOUT)
    msg = str(err.value)
    assert msg.startswith(f"{path}:3: invalid JSON")
    assert "column" in msg and LAYOUT in msg


def test_read_jsonl_line_that_is_not_an_object(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "a.jsonl", [{"x": 1}, [1, 2]])
    with pytest.raises(
        FormatError, match=r"a\.jsonl:2: expected a JSON object \(the test layout\), got list"
    ):
        read_jsonl(path, LAYOUT)


def test_read_jsonl_invalid_utf8(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"x": "\xff"}\n')
    with pytest.raises(FormatError, match=r"bad\.jsonl:1: not valid UTF-8"):
        read_jsonl(path, LAYOUT)


def test_missing_file_names_the_file_and_the_layout(tmp_path):
    missing = tmp_path / "nope.jsonl"
    for reader in (read_jsonl, read_json):
        with pytest.raises(FileNotFoundError) as err:
            reader(missing, LAYOUT)
        assert str(missing) in str(err.value)
        assert f"no such file; expected {LAYOUT}" in str(err.value)


def test_missing_file_is_a_format_error_and_a_file_not_found_error(tmp_path):
    from mendlight.data.formats.common import FormatFileNotFoundError
    from mendlight.errors import UserInputError

    for reader in (read_jsonl, read_json):
        with pytest.raises(FormatFileNotFoundError) as err:
            reader(tmp_path / "nope.jsonl", LAYOUT)
        assert isinstance(err.value, FormatError) and isinstance(err.value, UserInputError)
        assert isinstance(err.value, FileNotFoundError)


def test_read_jsonl_splits_on_newline_only(tmp_path):
    path = tmp_path / "a.jsonl"
    lines = [json.dumps({"x": "a\u2028b\u2029c\x85d"}, ensure_ascii=False), "", json.dumps({"x": 2}), "{"]
    path.write_text("\r\n".join(lines[:3]) + "\r\n", encoding="utf-8")  # CRLF
    assert read_jsonl(path, LAYOUT) == [(f"{path}:1", {"x": "a\u2028b\u2029c\x85d"}), (f"{path}:3", {"x": 2})]
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(FormatError, match=r"a\.jsonl:4: invalid JSON"):  # not line 7
        read_jsonl(path, LAYOUT)


@pytest.mark.parametrize(
    ("text", "message"),
    [("[" * 100_000, "nesting too deep"), ('{"x": ' + "1" * 5000 + "}", "Exceeds the limit")],
)
def test_unparseable_json_is_a_format_error(tmp_path, text, message):
    path = tmp_path / "a.jsonl"
    path.write_text('{"x": 1}\n' + text + "\n", encoding="utf-8")
    with pytest.raises(FormatError) as err:
        read_jsonl(path, LAYOUT)
    assert str(err.value).startswith(f"{path}:2: invalid JSON (") and message in str(err.value)
    assert f"{LAYOUT} has one JSON object per line" in str(err.value)
    doc = tmp_path / "doc.json"
    doc.write_text(text, encoding="utf-8")
    with pytest.raises(FormatError) as err:
        read_json(doc, LAYOUT)
    assert str(err.value).startswith(f"{doc}: invalid JSON (") and message in str(err.value)


def test_read_json_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('[\n  {"a": 1},\n  {"a": 2,}\n]\n', encoding="utf-8")
    with pytest.raises(
        FormatError, match=r"doc\.json:3: invalid JSON \(.* at column \d+\); expected the test"
    ):
        read_json(path, LAYOUT)


def test_list_rows_positions_and_errors():
    assert list_rows([{"a": 1}, {"b": 2}], "f.json", LAYOUT) == [
        ("f.json[0]", {"a": 1}),
        ("f.json[1]", {"b": 2}),
    ]
    with pytest.raises(
        FormatError, match=r"f\.json: expected a JSON list of objects \(the test layout\), got dict"
    ):
        list_rows({"a": 1}, "f.json", LAYOUT)
    with pytest.raises(FormatError, match=r"f\.json\[1\]: expected a JSON object .* got str"):
        list_rows([{"a": 1}, "x"], "f.json", LAYOUT)
    assert as_object({"k": 1}, "w", LAYOUT) == {"k": 1}


def test_req_str():
    assert req_str({"k": "v"}, "k", "f:1", "hint") == "v"
    with pytest.raises(FormatError, match=r"^f:1: missing field 'k' \(the hint\)$"):
        req_str({}, "k", "f:1", "the hint")
    with pytest.raises(FormatError, match=r"f:1: field 'k' must be a non-empty string \(got 3\); the hint"):
        req_str({"k": 3}, "k", "f:1", "the hint")
    with pytest.raises(FormatError, match=r"field 'outer\.k' must be a non-empty string \(got '  '\)"):
        req_str({"k": "  "}, "k", "f:1", "the hint", name="outer.k")


def test_str_list():
    assert str_list({"k": ["a", "b"]}, "k", "f:1", "h") == ["a", "b"]
    assert str_list({}, "k", "f:1", "h") == []
    assert str_list({"k": None}, "k", "f:1", "h") == []
    with pytest.raises(FormatError, match=r"f:1: missing field 'k' \(h\)"):
        str_list({}, "k", "f:1", "h", required=True)
    with pytest.raises(FormatError, match=r"f:1: field 'k' must be a list of strings \(got 'abc'\)"):
        str_list({"k": "abc"}, "k", "f:1", "h")
    with pytest.raises(FormatError, match=r"f:1: field 'k\[1\]' must be a string \(got 7\)"):
        str_list({"k": ["a", 7]}, "k", "f:1", "h")


def test_kilt_answer_reads_both_layouts():
    assert kilt_answer({"output": [{"answer": "Paris", "provenance": []}, {"answer": "x"}]}, "w") == "Paris"
    assert kilt_answer({"output": {"answer": ["Lima", "x"], "provenance": [[]]}}, "w") == "Lima"
    with pytest.raises(FormatError, match=r"w: field 'output' must be a non-empty list"):
        kilt_answer({}, "w")
    with pytest.raises(FormatError, match=r"w: field 'output' must be a non-empty list"):
        kilt_answer({"output": []}, "w")
    with pytest.raises(FormatError, match=r"w: field 'output\[0\]\.answer' must be a non-empty string"):
        kilt_answer({"output": [{"provenance": []}]}, "w")
    with pytest.raises(FormatError, match=r"w: field 'output\[0\]\.answer'"):
        kilt_answer({"output": {"answer": []}}, "w")


def test_clean_rephrases_removes_prompt_blanks_and_repeats():
    notes = Counter()
    kept = clean_rephrases(["a?", " Q? ", "", "a?", "b?", "Q?"], "Q?", notes)
    assert kept == ["a?", "b?"]
    assert notes == Counter({"rephrases equal to the prompt removed": 2, "blank rephrases removed": 1})


def test_unique_ids_suffixes_repeats():
    records = [EditRecord("p", "t", id=i) for i in ("a", "b", "a", "a")] + [EditRecord("p", "t")]
    unique_ids(records)
    assert [r.id for r in records] == ["a", "b", "a~2", "a~3", "record"]


def test_conversion_summary_and_counts():
    conv = Conversion(
        [EditRecord("p", "t")],
        "zsre-kilt",
        "dev.jsonl",
        4,
        dropped=Counter({"no rephrases": 1, "no alternatives": 2}),
        notes=Counter({"x removed": 5}),
    )
    assert conv.n_dropped == 3
    assert conv.summary().splitlines() == [
        "zsre-kilt: read 4 rows from dev.jsonl, kept 1 records",
        "dropped 3 (no alternatives: 2, no rephrases: 1)",
        "note: x removed: 5",
    ]
    empty = Conversion([], "counterfact", "cf.json", 0)
    assert empty.n_dropped == 0
    assert empty.summary() == "counterfact: read 0 rows from cf.json, kept 0 records\ndropped 0"
