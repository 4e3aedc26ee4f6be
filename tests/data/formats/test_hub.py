import json

import datasets
import pytest

from mendlight.data.formats import HubUnavailableError, load
from mendlight.data.formats.hub import (
    HUB_DATASETS,
    hub_offline,
    hub_record_format,
    load_hub_rows,
    parse_hub_ref,
)
from mendlight.data.formats.nq import hub_nq, read_nq
from mendlight.data.formats.wikitext import hub_corpus, read_corpus
from mendlight.data.records import LocalityItem

WORDS = " ".join(f"w{i}" for i in range(60))


@pytest.fixture
def fake_hub(monkeypatch, no_hub_env):
    """Replace ``datasets.load_dataset`` by a lookup in ``tables`` (keyed by path); record every call."""
    tables: dict[str, list[dict]] = {}
    calls: list[tuple] = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        if path not in tables:
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")
        return list(tables[path])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return tables, calls


@pytest.fixture
def offline(monkeypatch):
    """Offline mode; ``load_dataset`` must not even be called."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    def fail(*args, **kwargs):
        raise AssertionError("load_dataset was called in offline mode")

    monkeypatch.setattr(datasets, "load_dataset", fail)


def test_parse_hub_ref():
    assert parse_hub_ref("hub:counterfact") == ("counterfact", None)
    assert parse_hub_ref("hub:counterfact:train") == ("counterfact", "train")
    assert parse_hub_ref("wikitext:test") == ("wikitext", "test")


def test_hub_offline_reads_both_variables(monkeypatch, no_hub_env):
    assert not hub_offline()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "true")
    assert hub_offline()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    assert not hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline()


# ---------------------------------------------------------------------- offline


def test_offline_counterfact_says_which_file_to_pass(offline):
    with pytest.raises(HubUnavailableError) as err:
        load("counterfact", "hub:counterfact")
    msg = str(err.value)
    assert "hub dataset 'counterfact' (azhx/counterfact) cannot be loaded: offline mode is on" in msg
    assert "HF_HUB_OFFLINE" in msg
    assert "pass a local file instead: ROME's counterfact.json with format 'counterfact'" in msg


def test_offline_via_datasets_variable(monkeypatch, offline):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match="offline mode is on"):
        load_hub_rows("counterfact")


def test_offline_nq_and_corpus_options(fx, offline):
    with pytest.raises(HubUnavailableError) as err:
        load("zsre-kilt", fx / "zsre_kilt_dev.jsonl", nq="hub:natural_questions")
    assert "hub dataset 'natural_questions'" in str(err.value)
    assert "MEND's data/nq/validation.json" in str(err.value) and "--nq FILE" in str(err.value)
    with pytest.raises(HubUnavailableError) as err:
        load("wikitext-10token", fx / "wikitext_10token_valid.json", corpus="hub:wikitext")
    assert "hub dataset 'wikitext' (wikitext)" in str(err.value)
    assert "wiki.valid.raw" in str(err.value) and "--corpus FILE" in str(err.value)


def test_zsre_and_fever_have_no_default_hub_copy(offline):
    with pytest.raises(HubUnavailableError) as err:
        load("zsre-kilt", "hub:zsre")
    msg = str(err.value)
    assert "no public hub copy of this layout is known; give repo=" in msg
    assert "structured_zeroshot-dev-new_annotated_final.jsonl with format 'zsre-kilt'" in msg
    with pytest.raises(HubUnavailableError, match="fever-dev-kilt.jsonl with format 'fever-kilt'"):
        load("fever-kilt", "hub:fever")


def test_hub_errors_exist_for_every_dataset(offline):
    for name, source in HUB_DATASETS.items():
        with pytest.raises(HubUnavailableError) as err:
            load_hub_rows(name)
        assert f"hub dataset {name!r}" in str(err.value)
        assert source.local in str(err.value)


def test_bad_hub_names(fx):
    with pytest.raises(
        ValueError, match=r"unknown hub dataset 'squad'; known: counterfact, fever, natural_q"
    ):
        load("counterfact", "hub:squad")
    with pytest.raises(
        ValueError, match=r"hub dataset 'counterfact' is in format 'counterfact', not 'zsre-kilt'"
    ):
        load("zsre-kilt", "hub:counterfact")
    with pytest.raises(
        ValueError,
        match=r"hub dataset 'wikitext' gives corpus, not records; use one of: counterfact, fever, zsre",
    ):
        load("counterfact", "hub:wikitext")
    with pytest.raises(ValueError, match=r"gives records, not nq; use one of: natural_questions, nq_open"):
        read_nq("hub:counterfact")
    with pytest.raises(ValueError, match=r"gives nq, not corpus; use one of: wikitext"):
        read_corpus("hub:nq_open")
    assert hub_record_format("zsre") == "zsre-kilt"
    assert hub_record_format("fever") == "fever-kilt"


# ---------------------------------------------------------------------- online (faked)


def test_load_failure_becomes_hub_unavailable(fake_hub):
    with pytest.raises(HubUnavailableError) as err:
        load("counterfact", "hub:counterfact:train")
    msg = str(err.value)
    assert "hub dataset 'counterfact' (azhx/counterfact, split 'train') could not be loaded" in msg
    assert "FileNotFoundError: Dataset 'azhx/counterfact' doesn't exist on the Hub" in msg
    assert "pass a local file instead: ROME's counterfact.json" in msg
    assert isinstance(err.value.__cause__, FileNotFoundError)


def test_hub_counterfact_converts_like_the_local_file(fx, fake_hub):
    tables, calls = fake_hub
    tables["azhx/counterfact"] = json.loads((fx / "counterfact.json").read_text(encoding="utf-8"))
    result = load("counterfact", "hub:counterfact")
    assert calls == [("azhx/counterfact", None, "test")]
    assert result.source == "hub:azhx/counterfact[test]"
    assert result.n_read == 5 and dict(result.dropped) == {"target_new equals target_true": 1}
    assert result.records == load("counterfact", fx / "counterfact.json").records
    load("counterfact", "hub:counterfact:train")
    assert calls[-1] == ("azhx/counterfact", None, "train")


def test_hub_repo_option(fx, fake_hub):
    tables, calls = fake_hub
    tables["me/my-counterfact"] = json.loads((fx / "counterfact.json").read_text(encoding="utf-8"))[:2]
    result = load("counterfact", "hub:counterfact", repo="me/my-counterfact")
    assert calls == [("me/my-counterfact", None, "test")]
    assert [r.subject for r in result.records] == ["Danielle Darrieux", "Toko Yasuda"]
    with pytest.raises(ValueError, match=r"format 'counterfact' has no option\(s\) repo"):
        load("counterfact", fx / "counterfact.json", repo="me/my-counterfact")


def _hub_layout(line):
    """A KILT line as ``datasets`` returns it: the list of output structs becomes a struct of lists."""
    row = dict(line)
    row["output"] = {
        "answer": [o["answer"] for o in line["output"]],
        "provenance": [o.get("provenance", []) for o in line["output"]],
    }
    return row


def test_hub_zsre_rows_go_through_the_kilt_converter(fx, fake_hub, fixture_lines):
    tables, calls = fake_hub
    tables["someone/zsre-annotated"] = [_hub_layout(line) for line in fixture_lines("zsre_kilt_dev.jsonl")]
    result = load("zsre-kilt", "hub:zsre", repo="someone/zsre-annotated", seed=3, n_loc=2)
    assert calls == [("someone/zsre-annotated", None, "validation")]
    assert result.source == "hub:someone/zsre-annotated[validation]"
    assert result.format == "zsre-kilt"
    assert dict(result.dropped) == {"no alternatives": 2, "no rephrases": 2}
    assert result.records == load("zsre-kilt", fx / "zsre_kilt_dev.jsonl", seed=3, n_loc=2).records
    assert result.records[0].target_true == "Antarctica"


def test_hub_fever_rows_go_through_the_fever_converter(fx, fake_hub, fixture_lines):
    tables, _ = fake_hub
    tables["someone/fever"] = [_hub_layout(line) for line in fixture_lines("fever_dev_kilt.jsonl")]
    result = load("fever-kilt", "hub:fever:train", repo="someone/fever", seed=1)
    assert result.source == "hub:someone/fever[train]"
    assert all(r.task == "classification" for r in result.records)
    assert result.records == load("fever-kilt", fx / "fever_dev_kilt.jsonl", seed=1).records


def test_hub_rows_without_ids_get_positions(fake_hub, fixture_lines):
    tables, _ = fake_hub
    rows = [_hub_layout(line) for line in fixture_lines("zsre_kilt_dev.jsonl")]
    for row in rows:
        del row["id"]
    tables["someone/zsre"] = rows
    result = load("zsre-kilt", "hub:zsre", repo="someone/zsre")
    assert [r.id for r in result.records] == [
        "zsre[validation]:0",
        "zsre[validation]:1",
        "zsre[validation]:4",
    ]


def test_hub_natural_questions_as_zsre_locality(fx, fake_hub):
    tables, calls = fake_hub

    def nq_row(question, *texts):
        return {
            "question": {"text": question},
            "annotations": {"short_answers": [{"text": t} for t in texts]},
        }

    tables["natural_questions"] = [
        nq_row("who wrote hamlet", ["William Shakespeare"], ["Shakespeare"]),
        nq_row("what is the meaning of life", [], []),
        nq_row("where is dubai", ["the UAE"]),
    ]
    assert hub_nq("hub:natural_questions") == [
        LocalityItem("Who wrote hamlet?", "Shakespeare"),
        LocalityItem("Where is dubai?", "the UAE"),
    ]
    assert calls == [("natural_questions", None, "validation")]
    result = load("zsre-kilt", fx / "zsre_kilt_dev.jsonl", nq="hub:natural_questions:train", n_loc=2)
    assert calls[-1] == ("natural_questions", None, "train")
    assert all(
        sorted(i.prompt for i in r.locality) == ["Where is dubai?", "Who wrote hamlet?"]
        for r in result.records
    )


def test_hub_nq_open(fake_hub):
    tables, calls = fake_hub
    tables["nq_open"] = [{"question": "who is it", "answer": ["Somebody Else", "Him"]}]
    assert read_nq("hub:nq_open") == [LocalityItem("Who is it?", "Him")]
    assert calls == [("nq_open", None, "validation")]


def test_hub_wikitext_corpus(fx, fake_hub):
    tables, calls = fake_hub
    tables["wikitext"] = [
        {"text": ""},
        {"text": " = Heading = \n"},
        {"text": f" {WORDS} \n"},
        {"text": "é " + WORDS},
    ]
    assert hub_corpus("hub:wikitext") == [WORDS]
    assert calls == [("wikitext", "wikitext-103-raw-v1", "validation")]
    result = load("wikitext-10token", fx / "wikitext_10token_valid.json", corpus="hub:wikitext:test", n_loc=1)
    assert calls[-1] == ("wikitext", "wikitext-103-raw-v1", "test")
    assert all(r.locality == [LocalityItem("", WORDS)] for r in result.records)
    assert read_corpus("hub:wikitext", min_words=1, ascii_only=False)[-1] == "é " + WORDS
