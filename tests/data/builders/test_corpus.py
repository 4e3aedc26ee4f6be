from pathlib import Path

import pytest

from mendlight.data.builders.corpus import (
    CorpusError,
    corpus_passages,
    foldoc_paragraphs,
    passages_hash,
    resolve_corpus,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "foldoc_sample.dict"  # 14 real FOLDOC entries


def test_foldoc_paragraphs_are_clean_prose():
    paragraphs = foldoc_paragraphs(FIXTURE)
    assert paragraphs[0].startswith("(AT&T) One of the largest US telecommunications providers")
    assert "birthplace of the Unix operating system and the C and C++" in paragraphs[0]  # braces removed
    for p in paragraphs:
        assert "{" not in p and "}" not in p and "http://" not in p and "<" not in p[:1]
        assert not p.startswith("[") and not p.startswith("(19") and not p.startswith("(20")  # refs, dates
        assert "Denis Howe" not in p and "GNU Free Documentation" not in p  # the header entries are dropped
    assert "AT&T split into three parts in 1996, one of which is Lucent Tecnologies" in paragraphs[3]


def test_dictzip_and_plain_dict_give_the_same_paragraphs(tmp_path):
    import gzip

    packed = tmp_path / "foldoc.dict.dz"
    packed.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    assert foldoc_paragraphs(packed) == foldoc_paragraphs(FIXTURE)


def test_passages_are_filtered_like_wikitext():
    passages = corpus_passages(str(FIXTURE))
    assert len(passages) == 20 and len(passages) < len(foldoc_paragraphs(FIXTURE))
    assert all(len(p.split()) >= 50 and p.isascii() for p in passages)
    assert len(corpus_passages(str(FIXTURE), min_words=100)) < len(passages)
    assert passages_hash(passages) == passages_hash(list(passages)) != passages_hash(passages[1:])


def test_missing_foldoc_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MENDLIGHT_CORPORA", str(tmp_path))
    with pytest.raises(CorpusError, match=r"make corpus.*MENDLIGHT_CORPORA"):
        resolve_corpus("foldoc")
    (tmp_path / "foldoc.dict.dz").write_bytes(FIXTURE.read_bytes())
    assert resolve_corpus("foldoc") == str(tmp_path / "foldoc.dict.dz")
    assert corpus_passages("foldoc") == corpus_passages(str(FIXTURE))
    with pytest.raises(CorpusError, match="does not exist"):
        resolve_corpus(str(tmp_path / "nope.txt"))
    assert resolve_corpus("hub:wikitext") == "hub:wikitext"
