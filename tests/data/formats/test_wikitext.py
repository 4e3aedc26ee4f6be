import json

import pytest

from mendlight.data.formats import load
from mendlight.data.formats.common import FormatError
from mendlight.data.formats.wikitext import (
    convert_wikitext_10token,
    filter_passages,
    read_corpus,
    split_completion,
)
from mendlight.models.tiny import build_byte_tokenizer

WORDS = " ".join(f"w{i}" for i in range(60))  # a 60-word ASCII passage


def write_json(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_words_split_targets_the_last_n_tokens_words(fx):
    data = json.loads((fx / "wikitext_10token_valid.json").read_text(encoding="utf-8"))
    result = convert_wikitext_10token(fx / "wikitext_10token_valid.json")
    assert result.format == "wikitext-10token"
    assert result.n_read == 5 == len(data["original"])
    assert len(result.records) == 4
    # "Hurricane Iris was a strong storm that struck Belize." has 9 words: nothing left for the prompt.
    assert dict(result.dropped) == {"too short to split off 10 words": 1}
    for i, record in enumerate(result.records):
        text = data["completions"][i]
        assert record.task == "generation"
        assert record.id == f"wikitext_10token_valid:{i}"
        assert record.prompt + record.target_new == text  # appended verbatim
        assert record.target_new.startswith(" ")  # the target keeps the space in front of it
        assert record.target_new.split() == text.split()[-10:]
        assert record.rephrases == []
        assert record.target_true is None
        assert record.meta == {"format": "wikitext-10token", "n_tokens": 10, "split": "words"}
    assert result.records[0].target_new == " later became a royal residence for the kings of England."
    assert result.records[0].prompt.endswith("William the Conqueror in 1078 and")


def test_n_tokens_of_the_file_is_used(tmp_path):
    path = write_json(
        tmp_path / "w.json", {"original": ["a"], "completions": ["one two three four five"], "n_tokens": 2}
    )
    record = convert_wikitext_10token(path).records[0]
    assert (record.prompt, record.target_new) == ("one two three", " four five")
    assert record.meta["n_tokens"] == 2


def test_original_split_cuts_after_the_original_prefix(fx):
    data = json.loads((fx / "wikitext_10token_valid.json").read_text(encoding="utf-8"))
    result = convert_wikitext_10token(fx / "wikitext_10token_valid.json", split="original")
    assert len(result.records) == 5
    for i, record in enumerate(result.records):
        assert record.prompt == data["original"][i]
        assert record.prompt + record.target_new == data["completions"][i]
    assert result.records[4].target_new == " that struck Belize."


def test_original_split_drops_completions_without_the_prefix(tmp_path):
    path = write_json(
        tmp_path / "w.json",
        {
            "original": ["Alpha beta", "Gamma"],
            "completions": ["Alpha beta gamma", "Delta epsilon"],
            "n_tokens": 1,
        },
    )
    result = convert_wikitext_10token(path, split="original")
    assert [r.target_new for r in result.records] == [" gamma"]
    assert dict(result.dropped) == {"no original prefix": 1}


def test_tokens_split_targets_exactly_the_last_n_tokens(fx):
    data = json.loads((fx / "wikitext_10token_valid.json").read_text(encoding="utf-8"))
    tok = build_byte_tokenizer()
    result = convert_wikitext_10token(fx / "wikitext_10token_valid.json", tokenizer=tok)
    assert len(result.records) == 5  # 10 bytes fit in every completion
    for i, record in enumerate(result.records):
        text = data["completions"][i]
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert record.prompt + record.target_new == text
        assert tok(record.target_new, add_special_tokens=False)["input_ids"] == ids[-10:]
        assert record.meta["split"] == "tokens"
    assert result.records[4].target_new == "ck Belize."
    # A base-model reference is loaded with load_tokenizer (tiny-random-* refs use the byte tokenizer).
    by_ref = convert_wikitext_10token(fx / "wikitext_10token_valid.json", tokenizer="tiny-random-gpt2")
    assert by_ref.records == result.records


def test_split_completion_units():
    assert split_completion("a b c d", 2, "words") == ("a b", " c d")
    assert split_completion("a b", 2, "words") is None
    assert split_completion("abcdef", 3, "tokens", build_byte_tokenizer()) == ("abc", "def")
    assert split_completion("abc", 3, "tokens", build_byte_tokenizer()) is None
    assert split_completion("pre post", 1, "original", original="pre") == ("pre", " post")
    assert split_completion("pre", 1, "original", original="pre") is None
    with pytest.raises(ValueError, match="split must be one of tokens, words, original, got 'chars'"):
        split_completion("a b", 1, "chars")


def test_split_option_errors(fx):
    path = fx / "wikitext_10token_valid.json"
    with pytest.raises(ValueError, match="split must be one of tokens, words, original, got 'chars'"):
        convert_wikitext_10token(path, split="chars")
    with pytest.raises(ValueError, match="split='tokens' needs a tokenizer"):
        convert_wikitext_10token(path, split="tokens")

    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="needs a fast tokenizer"):
        convert_wikitext_10token(path, tokenizer=Slow())


def test_read_corpus_keeps_long_ascii_paragraphs(fx):
    passages = read_corpus(fx / "wikitext_corpus.txt")
    # Headings and the short paragraph are too short; the Café paragraph is not ASCII.
    assert [p.split()[:3] for p in passages] == [
        ["Cape", "Cod", "is"],
        ["Since", "the", "construction"],
        ["The", "geology", "of"],
    ]
    assert all(len(p.split()) >= 50 and p.isascii() and p == p.strip() for p in passages)
    assert len(read_corpus(fx / "wikitext_corpus.txt", min_words=10)) == 4  # + the glacial moraine line
    with_cafe = read_corpus(fx / "wikitext_corpus.txt", ascii_only=False)
    assert len(with_cafe) == 4 and with_cafe[-1].startswith("The Café du Monde")


def test_read_corpus_joins_the_lines_of_a_paragraph(tmp_path):
    path = tmp_path / "corpus.txt"
    half = " ".join(["word"] * 30)
    path.write_text(f"{half}\n{half}\n\n\nshort one\n", encoding="utf-8")
    assert read_corpus(path) == [f"{half} {half}"]


def test_read_corpus_jsonl_and_errors(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": WORDS}, {"text": "too short"}])
    assert read_corpus(path) == [WORDS]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": WORDS}, {"body": WORDS}])
    with pytest.raises(FormatError, match=r"bad\.jsonl:2: field 'text' must be a string"):
        read_corpus(bad)
    short = write_jsonl(tmp_path / "short.jsonl", [{"text": "too short"}])
    with pytest.raises(FormatError, match=r"short\.jsonl: no passage has at least 50 words and only ASCII"):
        read_corpus(short)
    with pytest.raises(FileNotFoundError, match=r"none\.txt: no such corpus file"):
        read_corpus(tmp_path / "none.txt")
    with pytest.raises(FileNotFoundError, match=r"none\.jsonl: no such file"):
        read_corpus(tmp_path / "none.jsonl")


def test_filter_passages():
    assert filter_passages(["  " + WORDS + "  ", "short", "é " + WORDS]) == [WORDS]
    assert filter_passages(["a b", "é c"], min_words=2, ascii_only=False) == ["a b", "é c"]


def test_corpus_locality_passages(fx):
    passages = read_corpus(fx / "wikitext_corpus.txt")
    path = fx / "wikitext_10token_valid.json"
    result = convert_wikitext_10token(path, corpus=fx / "wikitext_corpus.txt", n_loc=2, seed=0)
    for record in result.records:
        assert len(record.locality) == 2
        assert all(item.prompt == "" for item in record.locality)  # scored as text (perplexity)
        answers = [item.answer for item in record.locality]
        assert len(set(answers)) == 2 and set(answers) <= set(passages)
    again = convert_wikitext_10token(path, corpus=str(fx / "wikitext_corpus.txt"), n_loc=2, seed=0)
    assert [r.locality for r in again.records] == [r.locality for r in result.records]
    assert result.notes == {}
    # Passages given as a list are used as they are; min_words applies to corpus files.
    listed = convert_wikitext_10token(path, corpus=["only passage"], n_loc=3)
    assert all([i.answer for i in r.locality] == ["only passage"] for r in listed.records)
    loose = convert_wikitext_10token(path, corpus=fx / "wikitext_corpus.txt", n_loc=10, min_words=10)
    assert all(len(r.locality) == 4 for r in loose.records)


def test_no_corpus_gives_no_locality_and_a_note(fx):
    result = convert_wikitext_10token(fx / "wikitext_10token_valid.json")
    assert all(r.locality == [] for r in result.records)
    assert result.notes == {"no locality corpus given": 1}
    assert convert_wikitext_10token(fx / "wikitext_10token_valid.json", n_loc=0).notes == {}


def test_load_equals_converter(fx):
    path, corpus = fx / "wikitext_10token_valid.json", fx / "wikitext_corpus.txt"
    assert load("wikitext-10token", path, corpus=corpus, seed=1).records == (
        convert_wikitext_10token(path, corpus=corpus, seed=1).records
    )


def test_extra_completions_are_ignored_and_noted(tmp_path):
    path = write_json(
        tmp_path / "w.json", {"original": ["x"], "completions": ["a b c", "d e f", 3], "n_tokens": 1}
    )
    result = convert_wikitext_10token(path)
    assert result.n_read == 1 and len(result.records) == 1
    assert result.notes["completions beyond len(original) ignored"] == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], r"w\.json: expected MEND's Wikitext 10-token edits .*got a JSON list"),
        ({"original": [], "completions": []}, r"w\.json: missing field 'n_tokens'"),
        ({"completions": [], "n_tokens": 10}, r"w\.json: missing field 'original'"),
        (
            {"original": "x", "completions": [], "n_tokens": 10},
            r"fields 'original' and 'completions' must be lists",
        ),
        (
            {"original": [], "completions": [], "n_tokens": "10"},
            r"field 'n_tokens' must be a positive integer \(got '10'\)",
        ),
        (
            {"original": [], "completions": [], "n_tokens": True},
            r"field 'n_tokens' must be a positive integer",
        ),
        (
            {"original": [], "completions": [], "n_tokens": 0},
            r"field 'n_tokens' must be a positive integer \(got 0\)",
        ),
        (
            {"original": ["a", "b"], "completions": ["a x"], "n_tokens": 1},
            r"'completions' has 1 entries, fewer than the 2",
        ),
        (
            {"original": ["a", "b"], "completions": ["a x", 4], "n_tokens": 1},
            r"w\.json: field 'completions\[1\]' must be a non-empty string \(got 4\)",
        ),
    ],
)
def test_bad_file_names_the_field(tmp_path, data, message):
    with pytest.raises(FormatError, match=message):
        convert_wikitext_10token(write_json(tmp_path / "w.json", data))


def test_invalid_json_and_missing_file(tmp_path):
    path = tmp_path / "w.json"
    path.write_text('{\n"original": [],\n"completions": [,\n"n_tokens": 10}', encoding="utf-8")
    with pytest.raises(FormatError, match=r"w\.json:3: invalid JSON"):
        convert_wikitext_10token(path)
    with pytest.raises(FileNotFoundError, match=r"valid\.json: no such file; expected MEND's Wikitext"):
        convert_wikitext_10token(tmp_path / "valid.json")
