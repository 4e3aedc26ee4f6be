"""Prose passages from local corpora, for the generation-editing data (the paper's Wikitext setting offline).

The default corpus is FOLDOC, the Free On-line Dictionary of Computing (Editor Denis Howe, GFDL 1.1+),
shipped by Debian's ``dict-foldoc`` package: encyclopedic entries on languages, hardware, people and
history, the closest offline match to Wikitext's register. ``make corpus`` fetches it with
``apt-get download dict-foldoc`` and unpacks it without installing (``dpkg -x``) into
``data/corpora/foldoc.dict.dz``. A corpus reference (:func:`corpus_passages`) is one of:

* ``"foldoc"`` — that file (``$MENDLIGHT_CORPORA`` overrides the ``data/corpora`` directory);
* a FOLDOC/dictd file (``.dict.dz`` or its decompressed ``.dict``), parsed by :func:`foldoc_paragraphs`;
* a ``.txt`` or ``.jsonl`` file, or ``"hub:wikitext[:split]"`` (Wikitext-103 when the hub is reachable),
  read by :func:`mendlight.data.formats.wikitext.read_corpus`.

Passages are filtered as MEND filters Wikitext (at least 50 words, ASCII only).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from pathlib import Path

from mendlight.data.formats.wikitext import MIN_WORDS, filter_passages, read_corpus

DEFAULT_CORPUS = "foldoc"
FOLDOC_FILE = "foldoc.dict.dz"
FETCH_COMMAND = "make corpus"

_TAG = re.compile(r"^(\d+\.\s*)?<[^>]{1,40}>\s*")  # "<language> " or "1. <programming> " at a paragraph start
_LINK_URL = re.compile(r"\{([^{}]*?)\s*\((?:https?|ftp|mailto|news)[^(){}]*\)\}")  # {text (http://...)}
_URL = re.compile(r"\((?:https?|ftp)://[^()\s]*\)|(?:https?|ftp)://\S+")
_DATE = re.compile(r"^\(\d{4}-\d{2}-\d{2}\)$")


class CorpusError(FileNotFoundError):
    """A corpus file is missing; the message says how to fetch it or what to pass instead."""


def corpora_dir() -> Path:
    """Where fetched corpora live: ``$MENDLIGHT_CORPORA`` or ``data/corpora`` under the working directory."""
    return Path(os.environ.get("MENDLIGHT_CORPORA", "data/corpora")).expanduser()


def resolve_corpus(ref: str) -> str:
    """The file (or hub reference) behind a corpus reference.

    Raises:
        CorpusError: if ``"foldoc"`` has not been fetched, or a given file does not exist.

    """
    if ref.startswith("hub:"):
        return ref
    if ref == DEFAULT_CORPUS:
        path = corpora_dir() / FOLDOC_FILE
        if not path.is_file():
            raise CorpusError(
                f"the FOLDOC corpus is not at {path}. Fetch it with `{FETCH_COMMAND}` (apt-get download "
                "dict-foldoc, unpacked without installing), set MENDLIGHT_CORPORA to the directory holding "
                f"{FOLDOC_FILE}, or pass another corpus (a .txt/.jsonl file or hub:wikitext)"
            )
        return str(path)
    if not Path(ref).expanduser().is_file():
        raise CorpusError(
            f"corpus file {ref!r} does not exist; pass 'foldoc', a .txt/.jsonl file or hub:wikitext"
        )
    return str(Path(ref).expanduser())


def _clean(paragraph: str) -> str:
    text = " ".join(paragraph.split())
    text = _TAG.sub("", text)
    text = _LINK_URL.sub(r"\1", text)
    text = _URL.sub("", text)
    text = text.replace("{", "").replace("}", "")
    return " ".join(text.split())


def foldoc_paragraphs(path: str | os.PathLike[str]) -> list[str]:
    """The body paragraphs of a dictd-format FOLDOC file, cleaned into plain prose.

    Entries start with an unindented headword line followed by indented paragraphs. Subject tags
    (``<language>``), cross-reference braces (``{Pascal}`` → ``Pascal``) and URLs are removed; reference
    lists (``[...]``), dates and the database's own header entries (``00-database-*`` and the introduction,
    whose headword lists aliases separated by ``%%%``) are dropped.
    """
    raw = Path(path).read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw  # dictzip files are gzip-compatible
    text = data.decode("utf-8", errors="replace")
    paragraphs: list[str] = []
    headword = ""
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if not all(line.startswith((" ", "\t")) for line in lines):
            headword = lines[0]  # an entry's headword line
            continue
        if headword.startswith("00-database") or "%%%" in headword:
            continue  # the database's own header entries (name, URL, introduction and licence)
        paragraph = _clean(" ".join(line.strip() for line in lines))
        if paragraph and not paragraph.startswith("[") and not _DATE.match(paragraph):
            paragraphs.append(paragraph)
    return paragraphs


def corpus_passages(ref: str, min_words: int = MIN_WORDS, ascii_only: bool = True) -> list[str]:
    """The passages of a corpus reference (see the module doc), filtered by length and script."""
    source = resolve_corpus(ref)
    name = Path(source).name
    if not source.startswith("hub:") and (name.endswith(".dict.dz") or name.endswith(".dict")):
        return filter_passages(foldoc_paragraphs(source), min_words, ascii_only)
    return read_corpus(source, min_words, ascii_only)


def passages_hash(passages: list[str]) -> str:
    """A content hash of a passage list (part of a build's cache key)."""
    digest = hashlib.sha256()
    for passage in passages:
        digest.update(passage.encode("utf-8") + b"\x00")
    return digest.hexdigest()[:16]
