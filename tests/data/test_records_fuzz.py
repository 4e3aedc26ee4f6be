"""Property tests of records JSONL: any text round-trips; a malformed file gives a RecordError only."""

import json
import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mendlight.data.records import (
    RECORD_KEYS,
    EditRecord,
    LocalityItem,
    RecordError,
    read_records,
    write_records,
)

#: Characters ``str.splitlines`` (and editors, some JSONL readers) take for line breaks.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_PAIR = re.compile("([\ud800-\udbff])([\udc00-\udfff])")


def _text(surrogates: bool, min_size: int = 0) -> st.SearchStrategy[str]:
    """Arbitrary text with line-break characters mixed in, and lone surrogates if ``surrogates``.

    A high surrogate directly followed by a low one is split by a dot: JSON reads the escapes of such a pair
    back as the one character they encode (documented in :func:`mendlight.data.records.record_line`).
    """
    alphabet = st.one_of(st.characters(), st.sampled_from(LINE_BREAKS + '"\\'))
    if surrogates:
        alphabet = st.one_of(alphabet, st.characters(categories=["Cs"]))
    return st.text(alphabet, min_size=min_size, max_size=12).map(lambda s: _PAIR.sub(r"\1.\2", s))


@st.composite
def _records(draw: st.DrawFn, surrogates: bool) -> list[EditRecord]:
    text = _text(surrogates)
    filled = _text(surrogates, min_size=1).filter(str.strip)  # the required and optional strings
    n = draw(st.integers(1, 3))
    ids = draw(st.lists(filled, min_size=n, max_size=n, unique=True))
    meta_values = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text, st.lists(text, max_size=2)
    )
    return [
        EditRecord(
            prompt=draw(filled),
            target_new=draw(filled),
            target_true=draw(st.none() | filled),
            rephrases=draw(st.lists(filled, max_size=2)),
            locality=[LocalityItem(p, a) for p, a in draw(st.lists(st.tuples(filled, filled), max_size=2))],
            subject=draw(st.none() | filled),
            relation=draw(st.none() | filled),
            id=record_id,
            meta=draw(st.dictionaries(text, meta_values, max_size=3)),
        )
        for record_id in ids
    ]


def _check_round_trip(records: list[EditRecord]) -> None:
    with tempfile.TemporaryDirectory() as tmp:  # not tmp_path: hypothesis runs many examples per test
        path = write_records(Path(tmp) / "r.jsonl", records)
        back = read_records(path)
        assert back == records
        assert [r.id for r in back] == [r.id for r in records]
        # any line-splitting tool sees one line per record: no raw U+2028, U+0085, form feed... in the file
        assert len(path.read_text(encoding="utf-8").splitlines()) == len(records)
        assert all(r.source == f"{path}:{i}" for i, r in enumerate(back, start=1))


@settings(max_examples=60, deadline=None)
@given(_records(surrogates=False))
def test_write_then_read_round_trips_any_text(records):
    _check_round_trip(records)


@settings(max_examples=60, deadline=None)
@given(_records(surrogates=True))
def test_write_then_read_round_trips_lone_surrogates(records):
    _check_round_trip(records)


# ---------------------------------------------------------------------- malformed files

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
_GOOD = {"prompt": "The capital of France is", "target_new": "Rome", "id": "good"}
_keys = st.sampled_from((*RECORD_KEYS, "targt_new", "extra", ""))


def _nested(n: int, inner: str = "") -> str:
    return "[" * n + inner + "]" * n


_line = st.one_of(
    st.text(max_size=30),  # random text
    _json.map(json.dumps),  # random JSON values: lists, numbers, nested objects...
    st.dictionaries(_keys, _json, max_size=5).map(json.dumps),  # record keys with values of any type
    st.fixed_dictionaries(  # a record whose locality holds anything
        {"prompt": st.just("p"), "target_new": st.just("t"), "locality": st.lists(_json, max_size=2)}
    ).map(json.dumps),
    st.fixed_dictionaries(  # a valid-looking record with one field of any value
        {"prompt": st.just("p"), "target_new": st.just("t")},
        optional={k: _json for k in RECORD_KEYS if k not in ("prompt", "target_new")},
    ).map(json.dumps),
    st.just(json.dumps(_GOOD)),
    st.integers(1, 200_000).map(lambda n: "[" * n),  # huge nesting, unterminated
    st.integers(900, 1100).map(_nested),  # around the parser's nesting limit
    st.integers(900, 1100).map(lambda n: json.dumps(_GOOD)[:-1] + ', "meta": {"a": ' + _nested(n) + "}}"),
    st.integers(900, 1100).map(lambda n: '{"prompt": ' + _nested(n) + ', "target_new": "t"}'),
    st.integers(4000, 6000).map(lambda n: "1" * n),  # an integer too long for Python to convert
    st.just('{"prompt": "p", "target_new": "t", "id": "good"}'),  # a duplicate id with _GOOD
)
_content = st.lists(_line, max_size=5).map("\n".join)
_file_bytes = st.one_of(
    _content.map(lambda s: s.encode("utf-8")),
    st.binary(max_size=60),  # invalid UTF-8, NUL bytes...
    st.tuples(_content, st.binary(min_size=1, max_size=4), _content).map(
        lambda t: t[0].encode("utf-8") + b"\xff" + t[1] + t[2].encode("utf-8")
    ),
    _content.map(lambda s: s.replace("\n", "\r\n").encode("utf-8")),  # CRLF
)


@settings(max_examples=200, deadline=None)
@given(_file_bytes)
def test_malformed_files_give_records_or_record_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"
        path.write_bytes(data)
        try:
            records = read_records(path)
        except RecordError as err:
            assert str(err).startswith(str(path))  # every message names the file (and mostly the line)
        else:
            assert records and all(isinstance(r, EditRecord) for r in records)
