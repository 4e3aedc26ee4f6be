"""Natural Questions as locality facts (docs/algorithm.md §5.2, MEND's ``data/nq/{train,validation}.json``).

The file is one JSON object with two aligned lists::

    {"questions": ["Who sang the theme song for the Fresh Prince of Bel-Air?", ...],
     "answers": ["Will Smith", ...]}

MEND writes it from the hub ``natural_questions`` dataset (``python -m data_classes.nq``): each question
gets a capitalised first letter and a trailing ``"?"`` (the ``"nq question: "`` prefix is off by default), the
answer is the *shortest* first short-answer text over the annotations, and questions without a short answer
are dropped. :func:`read_nq` reads such a file verbatim; :func:`nq_hub_item` applies the same processing to
one hub row (used by :mod:`mendlight.data.formats.hub`).

The paper uses NQ only for **validation** locality of zsRE (docs/algorithm.md §5.2:
``use_nq = "train" not in path``); :func:`attach_nq` attaches NQ items to converted records
deterministically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mendlight.data.formats.common import FormatError, read_json
from mendlight.data.formats.hub import hub_source, load_hub_rows, parse_hub_ref
from mendlight.data.formats.locality import attach_locality
from mendlight.data.records import EditRecord, LocalityItem

NQ_LAYOUT = 'an NQ locality file: {"questions": [str, ...], "answers": [str, ...]} (MEND data/nq/*.json)'
#: The prefix T5's NQ fine-tuning puts before questions (optional in MEND, off by default).
NQ_PREFIX = "nq question: "


def read_nq(path: str | os.PathLike[str]) -> list[LocalityItem]:
    """Read an NQ locality file into locality items (question → answer), in file order.

    Args:
        path: the JSON file, or ``"hub:natural_questions[:split]"`` to process the hub dataset instead
            (:func:`hub_nq`).

    Returns:
        One item per question.

    Raises:
        FileNotFoundError: if the file does not exist.
        FormatError: if the file is not a JSON object with aligned ``questions``/``answers`` lists of
            non-empty strings (the message names the field and position).

    """
    if isinstance(path, str) and path.startswith("hub:"):
        return hub_nq(path)
    data = read_json(path, NQ_LAYOUT)
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected {NQ_LAYOUT}, got a JSON {type(data).__name__}")
    lists: dict[str, list[Any]] = {}
    for key in ("questions", "answers"):
        if key not in data:
            raise FormatError(f"{path}: missing field '{key}'; expected {NQ_LAYOUT}")
        if not isinstance(data[key], list):
            raise FormatError(f"{path}: field '{key}' must be a list of strings; expected {NQ_LAYOUT}")
        for i, value in enumerate(data[key]):
            if not isinstance(value, str) or not value.strip():
                raise FormatError(f"{path}: field '{key}[{i}]' must be a non-empty string (got {value!r})")
        lists[key] = data[key]
    questions, answers = lists["questions"], lists["answers"]
    if len(questions) != len(answers):
        raise FormatError(
            f"{path}: fields 'questions' ({len(questions)}) and 'answers' ({len(answers)}) must have the "
            "same length (answers[i] answers questions[i])"
        )
    if not questions:
        raise FormatError(f"{path}: field 'questions' is empty; an NQ locality file needs questions")
    return [LocalityItem(q, a) for q, a in zip(questions, answers, strict=True)]


def process_question(text: str, prefix: bool = False) -> str:
    """MEND's question processing: capitalise the first letter, append ``"?"``, optionally add the prefix."""
    text = text[:1].upper() + text[1:] + "?"
    return NQ_PREFIX + text if prefix else text


def nq_hub_item(row: dict[str, Any], where: str, prefix: bool = False) -> LocalityItem | None:
    """One hub ``natural_questions`` row as a locality item, or ``None`` if it has no short answer.

    The row holds ``question.text`` and ``annotations.short_answers``: one ``{"text": [...], ...}`` per
    annotation. As in MEND, each annotation contributes its first short-answer text, and the shortest of
    those is the answer. The lighter ``nq_open`` layout (``question`` string, ``answer`` list) is also read.

    Raises:
        FormatError: if the row has neither layout (naming ``where`` and the field).

    """
    question = row.get("question")
    if isinstance(question, dict):
        question = question.get("text")
    if not isinstance(question, str) or not question.strip():
        raise FormatError(f"{where}: missing field 'question.text' (the Natural Questions question)")
    if "annotations" in row:
        short = (row["annotations"] or {}).get("short_answers") or []
        texts = [a["text"][0] for a in short if isinstance(a, dict) and a.get("text")]
    elif "answer" in row:
        texts = [a for a in row["answer"] or [] if isinstance(a, str)]
    else:
        raise FormatError(f"{where}: missing field 'annotations.short_answers' (or 'answer' for nq_open)")
    texts = [t for t in texts if t.strip()]
    if not texts:
        return None
    return LocalityItem(process_question(question, prefix), min(texts, key=len))


def attach_nq(
    records: Sequence[EditRecord], nq: Sequence[LocalityItem], n: int = 1, seed: int = 0
) -> list[EditRecord]:
    """Attach ``n`` NQ locality items to every record (seeded per record id; see ``attach_locality``).

    Args:
        records: the converted records (changed in place).
        nq: NQ items from :func:`read_nq`.
        n: items per record.
        seed: the sampling seed.

    Returns:
        ``records``.

    """
    return attach_locality(records, nq, n, seed)


def hub_nq(ref: str, prefix: bool = False) -> list[LocalityItem]:
    """Natural Questions locality items from the hub (``"hub:natural_questions[:split]"`` or ``nq_open``).

    Questions are processed as MEND's NQ generator does (:func:`nq_hub_item`);
    questions without a short answer are left out.
    """
    name, split = parse_hub_ref(ref)
    hub_source(name, "nq")
    rows, _ = load_hub_rows(name, split)
    items = [nq_hub_item(row, where, prefix) for where, row in rows]
    return [item for item in items if item is not None]
