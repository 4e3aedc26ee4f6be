"""Wikitext 10-token generation edits (docs/algorithm.md §5.4), with locality passages from a text corpus.

MEND's ``data/10token/data/self_sample/{train,valid}.json`` is one JSON object::

    {"original": [...], "completions": ["<passage prefix x_e><10-token continuation y_e>", ...],
     "n_tokens": 10}

``len(original)`` is the number of edits, and ``completions[i]`` is the edit sequence: a Wikitext passage
prefix followed by a continuation sampled from distilGPT-2. MEND's labels are the **last ``n_tokens``
tokens** of the tokenised completion. A record is ``task="generation"`` with ``prompt + target_new ==
completions[i]`` (the data module appends a generation target verbatim), ``rephrases = []`` (the data module
then cuts a prefix of the prompt, MEND's rephrase), and ``meta = {"n_tokens", "split"}``. Where the text is
split (``split``):

* ``"tokens"`` (the default when a ``tokenizer`` is given): exactly before the last ``n_tokens`` tokens of
  that tokenizer (MEND's rule; use the base model's tokenizer);
* ``"words"`` (the default without a tokenizer): before the last ``n_tokens`` whitespace-separated words, an
  approximation that needs no tokenizer (a word is often more than one token);
* ``"original"``: after ``original[i]``, for files whose ``original`` holds the prefixes.

The target keeps the whitespace in front of it. Completions too short to split are dropped and counted.

Locality (docs/algorithm.md §5.4): passages of a corpus with at least ``min_words`` words (50) and only
ASCII characters, each a locality item with an empty prompt and the passage as the answer (scored as text,
perplexity). The corpus is a ``.txt`` file (paragraphs separated by blank lines, e.g. Wikitext's
``wiki.valid.raw``), a ``.jsonl`` file of ``{"text": ...}`` objects, or ``"hub:wikitext[:split]"``;
``n_loc`` passages are drawn per record (seeded by record id).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mendlight.data.formats.common import Conversion, FormatError, read_json, read_jsonl
from mendlight.data.formats.hub import hub_source, load_hub_rows, parse_hub_ref
from mendlight.data.formats.locality import attach_locality
from mendlight.data.records import EditRecord, LocalityItem

WIKI_LAYOUT = (
    'MEND\'s Wikitext 10-token edits (self_sample/{train,valid}.json: {"original": [...], '
    '"completions": [str, ...], "n_tokens": 10})'
)
SPLITS: tuple[str, ...] = ("tokens", "words", "original")
MIN_WORDS = 50


def filter_passages(texts: Iterable[str], min_words: int = MIN_WORDS, ascii_only: bool = True) -> list[str]:
    """MEND's locality filter: stripped passages of at least ``min_words`` words, optionally ASCII only."""
    kept = []
    for text in texts:
        text = text.strip()
        if len(text.split()) >= min_words and (text.isascii() or not ascii_only):
            kept.append(text)
    return kept


def hub_corpus(ref: str, min_words: int = MIN_WORDS, ascii_only: bool = True) -> list[str]:
    """Locality passages from a hub text dataset (``"hub:wikitext[:split]"``), filtered as MEND does."""
    name, split = parse_hub_ref(ref)
    hub_source(name, "corpus")
    rows, _ = load_hub_rows(name, split)
    return filter_passages((str(row.get("text", "")) for _, row in rows), min_words, ascii_only)


def read_corpus(
    path: str | os.PathLike[str], min_words: int = MIN_WORDS, ascii_only: bool = True
) -> list[str]:
    """Read locality passages from a corpus file (or ``"hub:wikitext[:split]"``), filtered as MEND does.

    Args:
        path: a ``.jsonl`` file of ``{"text": ...}`` objects, any other file as plain text with paragraphs
            separated by blank lines (lines of a paragraph are joined with spaces), or a hub reference.
        min_words: minimum words per passage.
        ascii_only: drop passages with non-ASCII characters.

    Returns:
        The passages, in file order.

    Raises:
        FileNotFoundError: if the file does not exist.
        FormatError: if a JSONL line has no ``text`` string, or no passage passes the filter.

    """
    if isinstance(path, str) and path.startswith("hub:"):
        return hub_corpus(path, min_words=min_words, ascii_only=ascii_only)
    if Path(path).suffix == ".jsonl":
        texts = []
        for where, obj in read_jsonl(path, 'a corpus JSONL of {"text": ...} objects'):
            if not isinstance(obj.get("text"), str):
                raise FormatError(f"{where}: field 'text' must be a string (a corpus passage)")
            texts.append(obj["text"])
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"{path}: no such corpus file; expected plain text or a JSONL of passages"
            )
        raw = Path(path).read_text(encoding="utf-8", errors="replace")
        texts = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", raw)]
    passages = filter_passages(texts, min_words, ascii_only)
    if not passages:
        raise FormatError(
            f"{path}: no passage has at least {min_words} words"
            + (" and only ASCII characters" if ascii_only else "")
        )
    return passages


def _load_tokenizer(tokenizer: Any) -> Any:
    if isinstance(tokenizer, str):
        from mendlight.models.loading import load_tokenizer

        return load_tokenizer(tokenizer)
    return tokenizer


def split_completion(
    text: str, n_tokens: int, split: str, tokenizer: Any = None, original: Any = None
) -> tuple[str, str] | None:
    """Split a completion into ``(prompt, target)`` with the target = its last ``n_tokens`` units.

    Args:
        text: the completion.
        n_tokens: target length.
        split: ``"tokens"``, ``"words"`` or ``"original"`` (see the module doc).
        tokenizer: a fast (offset-mapping) tokenizer, for ``"tokens"``.
        original: the ``original`` entry, for ``"original"``.

    Returns:
        The two parts (``prompt + target == text``), or ``None`` if the text has no prompt left.

    """
    if split == "tokens":
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        # The target starts where the last prompt token ends: it keeps the whitespace in front of it.
        start = offsets[len(offsets) - n_tokens - 1][1] if len(offsets) > n_tokens else None
    elif split == "words":
        words = [m.end() for m in re.finditer(r"\S+", text)]
        start = words[len(words) - n_tokens - 1] if len(words) > n_tokens else None
    elif split == "original":
        ok = isinstance(original, str) and text.startswith(original)
        start = len(original) if ok else None
    else:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if start is None or not text[:start].strip() or not text[start:].strip():
        return None
    return text[:start], text[start:]


def _check(data: Any, path: str) -> tuple[list[Any], list[str], int]:
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected {WIKI_LAYOUT}, got a JSON {type(data).__name__}")
    for key in ("original", "completions", "n_tokens"):
        if key not in data:
            raise FormatError(f"{path}: missing field '{key}'; expected {WIKI_LAYOUT}")
    original, completions, n_tokens = data["original"], data["completions"], data["n_tokens"]
    if not isinstance(original, list) or not isinstance(completions, list):
        raise FormatError(
            f"{path}: fields 'original' and 'completions' must be lists; expected {WIKI_LAYOUT}"
        )
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise FormatError(f"{path}: field 'n_tokens' must be a positive integer (got {n_tokens!r:.60})")
    if len(completions) < len(original):
        raise FormatError(
            f"{path}: field 'completions' has {len(completions)} entries, fewer than the {len(original)} of "
            "'original' (completions[i] is the edit sequence of original[i])"
        )
    for i, text in enumerate(completions[: len(original)]):
        if not isinstance(text, str) or not text.strip():
            raise FormatError(
                f"{path}: field 'completions[{i}]' must be a non-empty string (got {text!r:.60})"
            )
    return original, completions, n_tokens


def convert_wikitext_10token(
    path: str | os.PathLike[str],
    seed: int = 0,
    n_loc: int = 1,
    corpus: str | os.PathLike[str] | Sequence[str] | None = None,
    tokenizer: Any = None,
    split: str | None = None,
    min_words: int = MIN_WORDS,
) -> Conversion:
    """Convert MEND's Wikitext 10-token file (``self_sample/train.json`` / ``valid.json``).

    Args:
        path: the JSON file.
        seed: seed of the locality sampling.
        n_loc: locality passages per record (0: none).
        corpus: locality passages: a corpus file, ``"hub:wikitext[:split]"``, or a list of passages (used
            as given); ``None``: no locality.
        tokenizer: a base-model reference (e.g. ``"smollm2-135m"``, loaded with
            :func:`~mendlight.models.loading.load_tokenizer`) or a fast tokenizer, for ``split="tokens"``.
        split: ``"tokens"``, ``"words"`` or ``"original"``; default ``"tokens"`` with a
            tokenizer, else ``"words"``.
        min_words: minimum words of a corpus passage.

    Returns:
        The conversion (records and drop counts).

    Raises:
        FormatError: if the file does not have the layout above (naming the field).
        ValueError: on an unknown ``split``, or ``split="tokens"`` without a tokenizer.

    """
    split = split or ("tokens" if tokenizer is not None else "words")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "tokens" and tokenizer is None:
        raise ValueError("split='tokens' needs a tokenizer (a base-model reference such as 'smollm2-135m')")
    tok = _load_tokenizer(tokenizer) if split == "tokens" else None
    if tok is not None and not getattr(tok, "is_fast", False):
        raise ValueError("split='tokens' needs a fast tokenizer (one that returns offset mappings)")
    original, completions, n_tokens = _check(read_json(path, WIKI_LAYOUT), str(path))
    records: list[EditRecord] = []
    dropped: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    if len(completions) > len(original):
        notes["completions beyond len(original) ignored"] += len(completions) - len(original)
    stem = Path(path).stem
    for i, text in enumerate(completions[: len(original)]):
        parts = split_completion(text, n_tokens, split, tok, original[i])
        if parts is None:
            dropped[
                f"too short to split off {n_tokens} {split}" if split != "original" else "no original prefix"
            ] += 1
            continue
        records.append(
            EditRecord(
                prompt=parts[0],
                target_new=parts[1],
                id=f"{stem}:{i}",
                meta={"format": "wikitext-10token", "n_tokens": n_tokens, "split": split},
                task="generation",
            )
        )
    if corpus is not None:
        pool = [
            LocalityItem("", p)
            for p in (read_corpus(corpus, min_words) if isinstance(corpus, str | os.PathLike) else corpus)
        ]
        attach_locality(records, pool, n_loc, seed)
    elif n_loc:
        notes["no locality corpus given"] += 1
    return Conversion(records, "wikitext-10token", str(path), len(original), dropped, notes)
