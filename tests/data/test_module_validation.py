"""EditDataModule input errors: option ranges, missing files, and records that do not fit max_length."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mendlight.data import EditDataModule, EditRecord, LocalityItem, write_records
from mendlight.data.encoding import CausalEncoder, ClassifierEncoder, EncodingError, Seq2SeqEncoder
from mendlight.data.records import RecordError, RecordFileNotFoundError
from mendlight.errors import ConfigError, UserInputError
from mendlight.models.tiny import build_byte_tokenizer

TOK = "tiny-random-llama"  # byte tokenizer: one token per byte, no BOS
OPTION = "--data.init_args.max_length"


def _ok(i, **fields):
    record = {
        "prompt": f"Prompt {i} is",
        "target_new": f"new{i}",
        "target_true": f"old{i}",
        "rephrases": [f"Rephrase of {i}:"],
        "locality": [LocalityItem(f"Locality of {i} is", "ans")],
        "id": f"r{i}",
    }
    record.update(fields)
    return EditRecord(**record)


def _module(tmp_path, train, **kwargs):
    """A module over ``train`` (records or a list of raw JSONL lines) and two good eval splits."""
    path = tmp_path / "train.jsonl"
    if isinstance(train[0], str):
        path.write_text("".join(line + "\n" for line in train), encoding="utf-8")
    else:
        write_records(path, train)
    write_records(tmp_path / "val.jsonl", [_ok(100)])
    write_records(tmp_path / "test.jsonl", [_ok(200)])
    kwargs.setdefault("tokenizer", TOK)
    return EditDataModule(dataset=str(tmp_path), **kwargs), path


def _setup_error(tmp_path, train, **kwargs):
    dm, path = _module(tmp_path, train, **kwargs)
    with pytest.raises(RecordError) as info:
        dm.setup("fit")
    assert isinstance(info.value, UserInputError)
    return str(info.value), path


# ---------------------------------------------------------------------- options and files


@pytest.mark.parametrize(
    ("option", "value", "low"),
    [
        ("n_edits", 0, 1),
        ("eval_n_edits", 0, 1),
        ("n_loc", -1, 0),
        ("max_length", 1, 2),
        ("num_workers", -2, 0),
    ],
)
def test_numeric_options_raise_config_error(option, value, low):
    with pytest.raises(ConfigError) as info:
        EditDataModule(**{option: value})
    assert str(info.value) == f"EditDataModule: {option} must be at least {low}, got {value}"
    assert isinstance(info.value, UserInputError) and isinstance(info.value, ValueError)


def test_missing_dataset_and_split_are_user_input_errors(tmp_path):
    missing = EditDataModule(dataset=str(tmp_path / "nowhere"), tokenizer=TOK)
    with pytest.raises(RecordFileNotFoundError, match="neither an embedded dataset"):
        missing.dataset_dir()
    write_records(tmp_path / "train.jsonl", [_ok(0)])
    dm = EditDataModule(dataset=str(tmp_path), tokenizer=TOK)
    with pytest.raises(RecordFileNotFoundError, match=r"missing split file .*val\.jsonl") as info:
        dm.setup("fit")
    assert isinstance(info.value, UserInputError) and isinstance(info.value, FileNotFoundError)


# ---------------------------------------------------------------------- rows too long for max_length


def test_too_long_target_fails_at_setup_naming_file_line_field_and_option(tmp_path):
    target = "x" * 40
    msg, path = _setup_error(tmp_path, [_ok(0), _ok(1, target_new=target, id="long")], max_length=16)
    assert msg == (
        f"{path}:2: field 'target_new' (record id 'long'): target ' {target}' plus one prompt token is 42 "
        f"tokens, longer than max_length=16; shorten it or raise {OPTION}"
    )
    dm, _ = _module(tmp_path, [_ok(0), _ok(1, target_new=target, id="long")], max_length=64)
    dm.setup("fit")  # fits a larger max_length
    assert dm.records("train")[1].target_new == target


@pytest.mark.parametrize(
    ("fields", "field", "tokens"),
    [
        ({"target_true": "y" * 20}, "target_true", 22),
        ({"locality": [LocalityItem("L is", "a"), LocalityItem("M is", "z" * 30)]}, "locality[1].answer", 32),
    ],
)
def test_every_row_of_a_record_is_checked(tmp_path, fields, field, tokens):
    train = [_ok(0), _ok(1), _ok(2, id="bad", **fields)]
    dm, path = _module(tmp_path, train, max_length=20)
    with pytest.raises(RecordError) as info:
        dm.setup("fit")
    msg = str(info.value)
    assert msg.startswith(f"{path}:3: field '{field}' (record id 'bad'): target ")
    assert msg.endswith(f"is {tokens} tokens, longer than max_length=20; shorten it or raise {OPTION}")


def test_long_prompts_are_truncated_not_rejected(tmp_path):
    long = "w" * 100
    record = _ok(0, prompt=long, rephrases=[long + "!"], locality=[LocalityItem(long + "?", "a")])
    dm, _ = _module(tmp_path, [record], max_length=20)
    dm.setup("fit")
    assert dm.make_batch(dm.records("train"), train=False)["edit"]["input_ids"].shape == (1, 20)


def test_rephrase_row_with_the_target_is_checked(tmp_path):
    """The target follows a prompt after a space, unless the prompt ends in whitespace: one token more."""
    target = "t" * 15  # 15 tokens after "Q: ", 16 (with the space) after "R:"
    msg, path = _setup_error(
        tmp_path, [_ok(0, prompt="Q: ", target_new=target, rephrases=["S: ", "R:"], id="sp")], max_length=16
    )
    assert msg.startswith(f"{path}:1: field 'target_new' (record id 'sp', in the row of rephrases[1]): ")
    assert "is 17 tokens, longer than max_length=16" in msg


def test_records_past_max_train_records_are_not_checked(tmp_path):
    dm, _ = _module(
        tmp_path, [_ok(0), _ok(1), _ok(2, target_new="x" * 40)], max_length=16, max_train_records=2
    )
    dm.setup("fit")
    assert [r.id for r in dm.records("train")] == ["r0", "r1"]


def test_seq2seq_target_with_eos_is_checked(tmp_path):
    msg, path = _setup_error(
        tmp_path, [_ok(0, target_new="abcdefgh")], tokenizer="tiny-random-t5", max_length=8
    )
    assert msg == (
        f"{path}:1: field 'target_new' (record id 'r0'): target 'abcdefgh' with eos is 9 tokens, longer than "
        f"max_length=8; shorten it or raise {OPTION}"
    )


def test_generation_rows_are_checked(tmp_path):
    def gen(i, **fields):
        record = {
            "prompt": f"Passage {i} runs down the hill and",
            "target_new": " then it ends",
            "locality": [LocalityItem("", "A whole passage of text."), LocalityItem("Q is", "A")],
            "id": f"g{i}",
            "task": "generation",
        }
        record.update(fields)
        return EditRecord(**record)

    good = [gen(0), gen(1, rephrases=["Another passage and"])]
    dm, _ = _module(tmp_path, good, max_length=16, max_loc_length=8)
    dm.setup_split("train")  # passages longer than max_loc_length keep their first tokens: fine
    msg, path = _setup_error(tmp_path, [*good, gen(2, target_new=" and on" * 3)], max_length=16)
    assert msg.startswith(
        f"{path}:3: field 'target_new' (record id 'g2'): target ' and on and on and on' plus"
    )
    assert "is 22 tokens, longer than max_length=16" in msg  # verbatim: no space added
    bad_loc = gen(3, locality=[LocalityItem("Q is", "A"), LocalityItem("", "x")])
    msg, path = _setup_error(tmp_path, [*good, bad_loc], max_length=16)
    assert msg == (
        f"{path}:3: field 'locality[1].answer' (record id 'g3'): locality passage 'x' gives fewer than two "
        "tokens; nothing can be scored; change the text or leave the record out"
    )


def test_lone_surrogate_fails_at_setup(tmp_path):
    line = '{"prompt": "P is", "target_new": "T", "rephrases": ["ok", "bad \\udc00"], "id": "s"}'
    msg, path = _setup_error(tmp_path, [line])
    assert msg.startswith(f"{path}:1: field 'rephrases[1]' (record id 's') holds a lone surrogate U+DC00")
    msg, path = _setup_error(tmp_path, ['{"prompt": "P is", "target_new": "T", "meta": {"k": "\\ud800"}}'])
    assert msg.startswith(f"{path}:1: field 'meta' (record id 'train:1') holds a lone surrogate U+D800")


# ---------------------------------------------------------------------- check_pair agrees with pair


def _encoders():
    from tokenizers.processors import TemplateProcessing

    bos = build_byte_tokenizer()
    bos.backend_tokenizer.post_processor = TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 1), ("<eos>", 2)]
    )
    return [
        CausalEncoder(build_byte_tokenizer(), max_length=8),
        CausalEncoder(bos, max_length=8),
        Seq2SeqEncoder(build_byte_tokenizer(), max_length=6, decoder_start_token_id=0),
        Seq2SeqEncoder(bos, max_length=6, decoder_start_token_id=0),
        ClassifierEncoder(bos, max_length=6),
    ]


ENCODERS = _encoders()
#: Texts mixing characters, blanks and the byte tokenizer's special-token texts (read as special tokens).
#: No lone surrogates: records holding one are refused before any encoder sees them (row_checks, tested
#: above), and tokenizers cannot encode them.
_texts = st.lists(
    st.one_of(
        st.characters(exclude_categories=("Cs",)), st.sampled_from(["<eos>", "<bos>", "<pad>", " ", "\u200b"])
    ),
    max_size=6,
).map("".join)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(_texts, _texts, st.booleans()), min_size=1, max_size=6), st.randoms())
def test_check_pair_raises_exactly_what_pair_raises(pairs, rnd):
    def outcome(fn, *args):
        try:
            fn(*args)
        except EncodingError as err:
            return (str(err), err.part, err.n_tokens)
        return None

    labelled = [(p, rnd.choice(["true", "false", t]), v) for p, t, v in pairs]
    for enc in ENCODERS:
        rows = labelled if isinstance(enc, ClassifierEncoder) else pairs
        expected = [outcome(enc.pair, *row) for row in rows]
        calls = [enc.target_call(p, t, v) for p, t, v in rows]
        with enc.checking([c for c in calls if c is not None], [p for p, _, _ in rows]):
            assert [outcome(enc.check_pair, *row) for row in rows] == expected
        assert enc._ids_cache is None and enc._char_tokens is None  # caches dropped


def test_check_pair_tokenises_a_prompt_that_is_a_special_token():
    enc = Seq2SeqEncoder(build_byte_tokenizer(), max_length=8, decoder_start_token_id=0)
    with pytest.raises(EncodingError, match="gives no tokens") as info:
        enc.pair("<eos>", "t")
    assert info.value.part == "prompt"
    with enc.checking([("t", False)], ["<eos>"]), pytest.raises(EncodingError, match="gives no tokens"):
        enc.check_pair("<eos>", "t")
