import random

import pytest
import torch
from tokenizers.processors import TemplateProcessing

from mendlight.data.batch import concat_rows, score_mask
from mendlight.data.encoding import (
    IGNORE_INDEX,
    CausalEncoder,
    ClassifierEncoder,
    Seq2SeqEncoder,
    check_task,
    fit_ids,
    make_encoder,
)
from mendlight.data.records import RecordError
from mendlight.models.tiny import build_byte_tokenizer

PAD, BOS, EOS = 0, 1, 2
X = IGNORE_INDEX


def _tok(template: str | None = None):
    """The tiny byte tokenizer, optionally with a post-processor adding special tokens."""
    tok = build_byte_tokenizer()
    if template is not None:
        tok.backend_tokenizer.post_processor = TemplateProcessing(
            single=template, special_tokens=[("<bos>", BOS), ("<eos>", EOS)]
        )
    return tok


BYTES = _tok()


def b(text: str) -> list[int]:
    """Byte-token ids of ``text`` without special tokens."""
    return list(BYTES(text, add_special_tokens=False)["input_ids"])


# ---------------------------------------------------------------------- causal


def test_causal_pair_completion_and_verbatim():
    enc = CausalEncoder(_tok(), max_length=32)
    row = enc.pair("ab", "cd")
    assert row.input_ids == b("ab cd")
    assert row.labels == [X] + b(" cd") + [X]  # position i predicts token i + 1
    assert row.decoder_input_ids is None
    gen = enc.pair("ab", "cd", verbatim=True)  # generation: the target is appended as is
    assert gen.input_ids == b("abcd")
    assert gen.labels == [X] + b("cd") + [X]
    assert enc.pair("ab ", "cd").input_ids == b("ab cd")  # no second space


@pytest.mark.parametrize(
    ("prompt", "target", "text"),
    [
        ("ab", "cd", "ab cd"),  # the separating space is added
        ("ab", " cd", "ab cd"),  # the target's own space separates: one space, not two
        ("ab", "  cd", "ab  cd"),  # a target's spaces are all kept
        ("ab ", "cd", "ab cd"),  # the prompt's trailing space separates
        ("ab ", " cd", "ab  cd"),  # whitespace on both sides: kept as given, nothing added
        ("ab", "\tcd", "ab\tcd"),  # any whitespace counts
        ("ab", "\ncd", "ab\ncd"),
    ],
)
def test_causal_separating_space_only_where_missing(prompt, target, text):
    enc = CausalEncoder(_tok(), max_length=32)
    assert enc.target_call(prompt, target) == (text[len(prompt) :], False)
    row = enc.pair(prompt, target)
    assert row.input_ids == b(text)
    assert row.labels == [X] * (len(prompt) - 1) + b(text[len(prompt) :]) + [X]
    assert enc.pair(prompt, target, verbatim=True).input_ids == b(prompt + target)  # generation: as is


def test_causal_truncation_keeps_bos():
    enc = CausalEncoder(_tok("<bos> $A"), max_length=6)
    row = enc.pair("abcdefgh", "xy")
    assert row.input_ids == [BOS] + b("gh xy")
    assert row.labels == [X, X] + b(" xy") + [X]
    assert enc.prompt_only("abcdefgh").input_ids == [BOS] + b("defgh")
    assert enc.prompt_only("abcdefgh").labels == [X] * 6
    with pytest.raises(ValueError, match="max_length=6"):
        enc.pair("a", "a target that is too long")


def test_causal_text_scores_every_next_token():
    enc = CausalEncoder(_tok("<bos> $A"), max_length=4, max_loc_length=5)
    row = enc.text("hello world")
    assert row.input_ids == [BOS] + b("hell")  # keeps the first max_loc_length tokens
    assert row.labels == b("hell") + [X]
    assert CausalEncoder(_tok(), max_length=64).text("abc").labels == b("bc") + [X]
    with pytest.raises(ValueError, match="fewer than two tokens"):
        CausalEncoder(_tok(), max_length=8).text("a")


@pytest.mark.parametrize("template", [None, "<bos> $A"])
def test_causal_prefix_cut(template):
    enc = CausalEncoder(_tok(template), max_length=64)
    head = [] if template is None else [BOS]
    row = enc.pair("0123456789", " next words", verbatim=True)
    assert enc.prefix_length(row) == 10
    seen = set()
    for seed in range(200):
        cut = enc.cut_prefix(row, random.Random(seed))
        remove = len(row.input_ids) - len(cut.input_ids)
        seen.add(remove)
        assert 0 <= remove <= 5  # at most half of the prefix
        assert cut.input_ids == head + row.input_ids[len(head) + remove :]
        assert cut.labels == [X] * len(head) + row.labels[len(head) + remove :]
        scored = [lab for lab in cut.labels if lab != X]
        assert scored == b(" next words")  # the labels move with their tokens
        assert cut.input_ids[-len(scored) :] == scored
    assert seen == set(range(6))
    a = enc.cut_prefix(row, random.Random("s"))
    assert a == enc.cut_prefix(row, random.Random("s"))  # seeded: deterministic
    short = enc.pair("a", "bc", verbatim=True)  # a one-token prefix cannot be cut
    assert enc.cut_prefix(short, random.Random(0)) == short


# ---------------------------------------------------------------------- seq2seq


@pytest.mark.parametrize(
    ("template", "start", "specials"),
    [("$A <eos>", 0, ([], [EOS])), ("<bos> $A <eos>", 2, ([BOS], [EOS]))],
    ids=["t5-like", "bart-like"],
)
def test_seq2seq_rows(template, start, specials):
    head, tail = specials
    enc = Seq2SeqEncoder(_tok(template), max_length=16, decoder_start_token_id=start)
    row = enc.pair("Where is it?", "Paris")
    assert row.input_ids == head + b("Where is it?") + tail
    assert row.labels == b("Paris") + [EOS]  # no leading space, ends with eos
    assert row.decoder_input_ids == [start] + row.labels[:-1]
    short = enc.pair("Q", "ab")
    group = enc.pad([row, short], edit_index=[0, 0])
    n_enc, n_dec = len(row.input_ids), len(row.labels)
    assert group["input_ids"].tolist() == [
        row.input_ids,
        short.input_ids + [PAD] * (n_enc - len(short.input_ids)),
    ]
    assert group["attention_mask"].tolist() == [
        [1] * n_enc,
        [1] * len(short.input_ids) + [0] * (n_enc - len(short.input_ids)),
    ]
    assert group["decoder_input_ids"].tolist() == [
        [start] + b("Paris"),
        [start] + b("ab") + [PAD] * 3,
    ]
    assert group["decoder_attention_mask"].tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert group["labels"].tolist() == [b("Paris") + [EOS], b("ab") + [EOS, X, X, X]]
    assert group["labels"].shape == group["decoder_input_ids"].shape == (2, n_dec)
    assert group["edit_index"].tolist() == [0, 0]
    assert torch.equal(score_mask(group), group["decoder_attention_mask"])
    true = enc.prompt_only("Q")
    assert (true.input_ids, true.labels, true.decoder_input_ids) == (head + b("Q") + tail, [X], [start])


def test_seq2seq_truncation_and_errors():
    enc = Seq2SeqEncoder(_tok("<bos> $A <eos>"), max_length=6, decoder_start_token_id=2)
    row = enc.pair("abcdefgh", "xy")
    assert row.input_ids == [BOS] + b("efgh") + [EOS]  # cut on the left, specials kept
    with pytest.raises(ValueError, match="max_length=6"):
        enc.pair("q", "abcdef")  # 6 tokens + eos
    assert enc.pair("q", "abcde").labels == b("abcde") + [EOS]
    with pytest.raises(ValueError, match="no tokens"):
        enc.pair("q", "")
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        make_encoder("seq2seq", _tok(), 8)


def test_seq2seq_groups_stack_with_concat_rows():
    enc = make_encoder("seq2seq", _tok("$A <eos>"), 16, decoder_start_token_id=0)
    edit = enc.pad([enc.pair("Who?", "Ann")])
    equiv = enc.pad([enc.pair("Who is it, really?", "Ann")], [0])
    loc = enc.pad([enc.pair("Q", "a long answer"), enc.pair("Qq", "b")], [0, 0])
    empty = enc.pad([], [])
    assert empty["decoder_input_ids"].shape == empty["labels"].shape == (0, 1)
    stacked, sizes = concat_rows([edit, equiv, loc, empty], pad_token_id=PAD)
    assert sizes == [1, 1, 2, 0]
    assert list(stacked) == [
        "input_ids",
        "attention_mask",
        "decoder_input_ids",
        "decoder_attention_mask",
        "labels",
    ]
    assert stacked["input_ids"].shape == (4, 16)  # the long rephrase is cut to max_length
    assert stacked["input_ids"][1].tolist() == b("Who is it, really?")[-15:] + [EOS]
    assert stacked["labels"].shape == stacked["decoder_input_ids"].shape == (4, len(b("a long answer")) + 1)
    assert stacked["labels"][0].tolist() == b("Ann") + [EOS] + [X] * 10
    assert stacked["decoder_input_ids"][0].tolist() == [0] + b("Ann") + [PAD] * 10
    assert stacked["decoder_attention_mask"][3].tolist() == [1, 1] + [0] * 12
    for key in ("decoder_input_ids", "labels"):
        assert stacked[key][2].tolist() == loc[key][0].tolist()


# ---------------------------------------------------------------------- classifier


def test_classifier_rows():
    enc = make_encoder("classifier", _tok("<bos> $A <eos>"), 8)
    assert isinstance(enc, ClassifierEncoder)
    rows = [enc.pair("Sky blue", "true"), enc.pair("Grass red", "false"), enc.prompt_only("Hm")]
    assert rows[0].input_ids == [BOS] + b("Sky bl") + [EOS]  # claims keep their start
    assert [r.labels for r in rows] == [1, 0, X]
    group = enc.pad(rows, [0, 0, 1])
    assert group["labels"].tolist() == [1, 0, X] and group["labels"].shape == (3,)
    assert group["labels"].dtype == torch.long
    assert group["input_ids"].shape == (3, 8) and "decoder_input_ids" not in group
    assert group["attention_mask"][2].tolist() == [1] * 4 + [0] * 4
    empty = enc.pad([])
    assert empty["labels"].shape == (0,) and empty["input_ids"].shape == (0, 1)
    stacked, sizes = concat_rows([group, empty, enc.pad(rows[:1])], pad_token_id=PAD)
    assert stacked["labels"].tolist() == [1, 0, X, 1] and sizes == [3, 0, 1]
    with pytest.raises(ValueError, match="'true' or 'false'"):
        enc.pair("claim", "SUPPORTS")
    with pytest.raises(TypeError, match="causal"):
        enc.text("passage")


# ---------------------------------------------------------------------- tasks and layouts


def test_check_task():
    for layout, task in [
        ("causal", "completion"),
        ("causal", "generation"),
        ("seq2seq", "completion"),
        ("classifier", "classification"),
    ]:
        check_task(task, layout, "r1", "ref")
    with pytest.raises(
        RecordError, match=r"data/x\.jsonl: record 'r7' has task 'classification'.*classifier"
    ):
        check_task("classification", "causal", "r7", "tiny-random-llama", "data/x.jsonl")
    with pytest.raises(RecordError, match="'r7'.*causal"):
        check_task("generation", "seq2seq", "r7", "tiny-random-t5")
    with pytest.raises(RecordError, match="'r7'.*classification records"):
        check_task("completion", "classifier", "r7", "tiny-random-bert")
    with pytest.raises(ValueError, match="unknown model layout"):
        check_task("completion", "vision", "r7", "ref")
    with pytest.raises(ValueError, match="unknown model layout"):
        make_encoder("vision", _tok(), 8)


def test_fit_ids():
    specials = {BOS, EOS}
    ids = [BOS, 10, 11, 12, 13, EOS]
    assert fit_ids(ids, 6, specials) == ids
    assert fit_ids(ids, 4, specials) == [BOS, 12, 13, EOS]
    assert fit_ids(ids, 4, specials, keep="start") == [BOS, 10, 11, EOS]
    assert fit_ids(ids, 2, specials) == [13, EOS]  # no room for the specials and content: plain cut
