import json
import runpy
import sys

import pytest

from mendlight.data.formats import (
    FORMATS,
    LOCALITY_FORMATS,
    Conversion,
    FormatError,
    convert,
    format_options,
    load,
)
from mendlight.data.formats.__main__ import guess_split, main
from mendlight.data.formats.counterfact import convert_counterfact
from mendlight.data.formats.fever import convert_fever_kilt
from mendlight.data.formats.wikitext import convert_wikitext_10token, read_corpus
from mendlight.data.formats.zsre import convert_zsre_kilt, convert_zsre_mend
from mendlight.data.records import EditRecord, read_records

KNOWN = "known formats: zsre-kilt, zsre-mend, fever-kilt, wikitext-10token, counterfact"


def test_registry():
    assert FORMATS == {
        "zsre-kilt": convert_zsre_kilt,
        "zsre-mend": convert_zsre_mend,
        "fever-kilt": convert_fever_kilt,
        "wikitext-10token": convert_wikitext_10token,
        "counterfact": convert_counterfact,
    }
    assert LOCALITY_FORMATS["corpus"] is read_corpus
    assert format_options("zsre-kilt") == ["seed", "n_loc", "nq"]
    assert format_options("zsre-mend") == ["loc_style"]
    assert format_options("fever-kilt") == ["seed", "n_loc", "edit_from"]
    assert format_options("wikitext-10token") == [
        "seed",
        "n_loc",
        "corpus",
        "tokenizer",
        "split",
        "min_words",
    ]
    assert format_options("counterfact") == []


def test_unknown_format_lists_the_formats(fx):
    for fn in (load, convert):
        with pytest.raises(ValueError) as err:
            fn("zsre", fx / "zsre_kilt_dev.jsonl")
        assert str(err.value) == f"unknown dataset format 'zsre'; {KNOWN}"


def test_locality_source_is_not_a_record_format(fx):
    with pytest.raises(ValueError) as err:
        load("nq", fx / "nq_validation.json")
    msg = str(err.value)
    assert "'nq' is a locality source, not an edit-record format" in msg
    assert "nq=... for zsre-kilt" in msg and "record formats: zsre-kilt, zsre-mend" in msg


def test_unknown_option_lists_the_valid_ones(fx):
    with pytest.raises(ValueError) as err:
        load("zsre-kilt", fx / "zsre_kilt_dev.jsonl", corpus="x", n_locality=2)
    assert (
        str(err.value)
        == "format 'zsre-kilt' has no option(s) corpus, n_locality; its options are: seed, n_loc, nq"
    )
    with pytest.raises(
        ValueError, match=r"^format 'counterfact' has no option\(s\) seed; its options are: none$"
    ):
        convert("counterfact", fx / "counterfact.json", seed=0)


def test_load_returns_the_conversion_convert_the_records(fx):
    result = load("zsre-kilt", fx / "zsre_kilt_dev.jsonl", seed=1, n_loc=2)
    assert isinstance(result, Conversion)
    assert result.n_read == 7 and result.n_dropped == 4
    records = convert("zsre-kilt", fx / "zsre_kilt_dev.jsonl", seed=1, n_loc=2)
    assert isinstance(records, list) and all(isinstance(r, EditRecord) for r in records)
    assert records == result.records
    assert convert("zsre-kilt", str(fx / "zsre_kilt_dev.jsonl"), seed=1, n_loc=2) == records


def test_bad_input_through_the_registry_is_a_format_error(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "dev.jsonl", [{"input": "Q?"}])
    with pytest.raises(FormatError, match=r"dev\.jsonl:1: field 'output' must be a non-empty list"):
        convert("zsre-kilt", path)


@pytest.mark.parametrize(
    ("source", "split"),
    [
        ("data/structured_zeroshot-train-new_annotated_final.jsonl", "train"),
        ("structured_zeroshot-dev-new_annotated_final.jsonl", "val"),
        ("zsre_mend_eval.json", "val"),
        ("self_sample/valid.json", "val"),
        ("fever-dev-kilt.jsonl", "val"),
        ("TEST_cases.json", "test"),
        ("val.json", "val"),
        ("counterfact.json", "counterfact"),
        ("hub:counterfact", "test"),
        ("hub:counterfact:train", "train"),
        ("hub:zsre", "val"),
    ],
)
def test_guess_split(source, split):
    assert guess_split(source) == split


def test_cli_writes_readable_jsonl_and_prints_the_summary(fx, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["zsre-kilt", str(fx / "zsre_kilt_dev.jsonl"), str(out), "--seed", "3"]) == 0
    written = out / "val.jsonl"
    assert [p.name for p in out.iterdir()] == ["val.jsonl"]
    records = read_records(written)
    expected = load("zsre-kilt", fx / "zsre_kilt_dev.jsonl", seed=3)
    assert records == expected.records
    lines = written.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["target_true"] == "Antarctica"
    stdout = capsys.readouterr().out
    assert stdout == f"{expected.summary()}\nwrote 3 records to {written}\n"
    assert "dropped 4 (no alternatives: 2, no rephrases: 2)" in stdout


def test_cli_options_reach_the_converter(fx, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["zsre-kilt", str(fx / "zsre_kilt_dev.jsonl"), str(out), "--split", "eval_nq"]
    assert main([*args, "--nq", str(fx / "nq_validation.json"), "--n-loc", "3", "--seed", "1"]) == 0
    records = read_records(out / "eval_nq.jsonl")
    nq_answers = set(json.loads((fx / "nq_validation.json").read_text(encoding="utf-8"))["answers"])
    assert all(len(r.locality) == 3 and {i.answer for i in r.locality} <= nq_answers for r in records)
    assert records == convert(
        "zsre-kilt", fx / "zsre_kilt_dev.jsonl", nq=fx / "nq_validation.json", n_loc=3, seed=1
    )

    wiki = fx / "wikitext_10token_valid.json"
    assert main(["wikitext-10token", str(wiki), str(out), "--text-split", "original", "--n-loc", "0"]) == 0
    gen = read_records(out / "val.jsonl")
    assert len(gen) == 5 and all(r.task == "generation" and r.meta["split"] == "original" for r in gen)

    corpus = fx / "wikitext_corpus.txt"
    args = ["wikitext-10token", str(wiki), str(out), "--split", "tok", "--tokenizer", "tiny-random-gpt2"]
    assert main([*args, "--corpus", str(corpus), "--min-words", "10", "--n-loc", "10"]) == 0
    tok = read_records(out / "tok.jsonl")
    assert all(r.meta["split"] == "tokens" and len(r.target_new) == 10 for r in tok)  # 10 byte tokens
    assert all(len(r.locality) == 4 for r in tok)  # every corpus paragraph of 10+ ASCII words

    fever = fx / "fever_dev_kilt.jsonl"
    assert main(["fever-kilt", str(fever), str(out), "--edit-from", "label", "--split", "fever"]) == 0
    assert all(r.meta["edit_from"] == "label" for r in read_records(out / "fever.jsonl"))

    mend = fx / "zsre_mend_eval.json"
    assert main(["zsre-mend", str(mend), str(out), "--loc-style", "rome", "--split", "mend"]) == 0
    assert read_records(out / "mend.jsonl")[0].locality[0].prompt.startswith("nq question: ")

    assert main(["counterfact", str(fx / "counterfact.json"), str(out)]) == 0
    assert [r.id for r in read_records(out / "counterfact.jsonl")] == ["0", "1", "2", "3"]
    assert "wrote 4 records to" in capsys.readouterr().out


def test_cli_bad_input_prints_file_line_and_field(tmp_path, write_jsonl, capsys):
    path = write_jsonl(tmp_path / "dev.jsonl", [{"input": "Q?", "output": [{"answer": "A"}]}])
    assert main(["fever-kilt", str(path), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:1: field 'output[0].answer' must be 'SUPPORTS' or 'REFUTES'")
    assert not (tmp_path / "out").exists()

    assert main(["zsre-kilt", str(path), str(tmp_path / "out")]) == 1
    assert f"error: {path}:1: missing field 'alternatives'" in capsys.readouterr().err


def test_cli_invalid_json_missing_file_and_bad_option(fx, tmp_path, write_jsonl, capsys):
    path = write_jsonl(tmp_path / "dev.jsonl", ["{oops"])
    assert main(["zsre-kilt", str(path), str(tmp_path)]) == 1
    assert f"error: {path}:1: invalid JSON" in capsys.readouterr().err

    assert main(["counterfact", str(tmp_path / "cf.json"), str(tmp_path)]) == 1
    assert "cf.json: no such file; expected CounterFact" in capsys.readouterr().err

    assert main(["fever-kilt", str(fx / "fever_dev_kilt.jsonl"), str(tmp_path), "--nq", "x.json"]) == 1
    err = capsys.readouterr().err
    assert "format 'fever-kilt' has no option(s) nq; its options are: seed, n_loc, edit_from" in err


def test_cli_no_records_left(tmp_path, write_jsonl, capsys):
    row = {"input": "Q?", "output": [{"answer": "A"}], "alternatives": [], "filtered_rephrases": ["Q2?"]}
    path = write_jsonl(tmp_path / "train.jsonl", [row])
    assert main(["zsre-kilt", str(path), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}: no records left to write" in err
    assert "dropped 1 (no alternatives: 1)" in err
    assert not (tmp_path / "out").exists()


def test_cli_hub_offline_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["counterfact", "hub:counterfact", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "offline mode is on" in err and "pass a local file instead: ROME's counterfact.json" in err


def test_cli_unknown_format_is_a_usage_error(fx, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["zsre", str(fx / "zsre_kilt_dev.jsonl"), str(tmp_path)])
    assert exc.value.code == 2
    assert "invalid choice: 'zsre'" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:.*found in sys.modules.*:RuntimeWarning")
def test_python_dash_m_entry_point(fx, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setattr(
        sys, "argv", ["mendlight.data.formats", "counterfact", str(fx / "counterfact.json"), str(out)]
    )
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("mendlight.data.formats", run_name="__main__")
    assert exc.value.code == 0
    assert len(read_records(out / "counterfact.jsonl")) == 4
    assert "counterfact: read 5 rows" in capsys.readouterr().out
