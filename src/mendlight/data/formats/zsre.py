"""zsRE question answering, in its two public forms (docs/algorithm.md §5.2 and §5.5).

**KILT form** (``zsre-kilt``): De Cao et al.'s KnowledgeEditor release,
``structured_zeroshot-{train,dev}-new_annotated_final.jsonl``, one KILT object per line::

    {"id": "...", "input": "Which continent is Mount Andrews on?",
     "output": [{"answer": "Antarctica", "provenance": [...]}],
     "prediction": "Antarctica", "alternatives": ["Africa", "Europe"],
     "filtered_rephrases": ["On which continent is Mount Andrews located?", ...]}

As in MEND's loader, the input is removed from its own rephrases, and a row without alternatives or without
rephrases is dropped (counted by reason). A record is ``prompt = input``, ``target_true = output[0].answer``
(the gold answer), ``target_new`` = one alternative drawn with ``random.Random(f"{seed}/{id}")`` (MEND draws
``alt = random.choice(alternatives)``: the edit target is an alternative, not the gold answer), and
``rephrases`` = the filtered rephrases. Locality: ``n_loc`` other questions of the same file with their gold
answers (MEND's training locality), or ``n_loc`` Natural Questions items when ``nq`` is given (MEND's
validation locality; see :mod:`mendlight.data.formats.nq`).

**Derived form** (``zsre-mend``): ROME/EasyEdit's ``zsre_mend_{train,eval}.json``, a JSON list of::

    {"subject": "Mount Andrews", "src": "Which continent is Mount Andrews on?", "alt": "Africa",
     "answers": ["Antarctica"], "rephrase": "On which continent is Mount Andrews located?",
     "loc": "nq question: who sang the theme song for the fresh prince of bel air", "loc_ans": "Will Smith"}

``prompt = src``, ``target_new = alt``, ``target_true = answers[0]``, ``rephrases = [rephrase]``, one
locality item from ``loc``/``loc_ans``. ``loc`` must start with ``"nq question: "`` (EasyEdit asserts it);
``loc_style`` says how the question is written: ``"nq"`` (default) strips the prefix and writes it as MEND's
NQ file does (capitalised, with ``"?"``), so both zsRE forms share one locality convention; ``"easyedit"``
keeps ``loc`` verbatim (EasyEdit's ``locality_prompt``); ``"rome"`` keeps it and appends ``"?"`` (ROME's
neighbourhood prompt). Rows with an empty ``alt`` are dropped (counted).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mendlight.data.formats.common import (
    Conversion,
    FormatError,
    Row,
    clean_rephrases,
    kilt_answer,
    list_rows,
    read_json,
    read_jsonl,
    req_str,
    str_list,
    unique_ids,
)
from mendlight.data.formats.locality import attach_locality, dataset_locality
from mendlight.data.formats.nq import NQ_PREFIX, read_nq
from mendlight.data.records import EditRecord, LocalityItem

KILT_LAYOUT = (
    "zsRE as released with KnowledgeEditor (KILT JSONL: input, output, alternatives, filtered_rephrases)"
)
MEND_LAYOUT = (
    "zsRE derived form (zsre_mend_*.json: a list of {src, alt, answers, rephrase, loc, loc_ans, subject})"
)
LOC_STYLES: tuple[str, ...] = ("nq", "easyedit", "rome")


def zsre_kilt_rows(
    rows: Iterable[Row],
    source: str,
    seed: int = 0,
    n_loc: int = 1,
    nq: str | os.PathLike[str] | list[LocalityItem] | None = None,
) -> Conversion:
    """Convert KILT zsRE rows (see the module doc); the work behind :func:`convert_zsre_kilt`.

    Args:
        rows: ``(where, object)`` pairs.
        source: the source name for the result and for default ids (``"<stem>:<line>"``).
        seed: seed of the alternative drawn as the new target and of the locality sampling.
        n_loc: locality items per record (0: none).
        nq: Natural Questions locality (a file for :func:`~mendlight.data.formats.nq.read_nq`, a
            ``"hub:natural_questions[:split]"`` reference, or items); ``None`` uses other questions of the
            same source with their gold answers.

    Returns:
        The conversion, with ``dropped`` counting ``"no alternatives"`` and ``"no rephrases"`` (a row
        lacking both counts as ``"no alternatives"``).

    Raises:
        FormatError: on a missing or mistyped field (naming the file, line and field).

    """
    records: list[EditRecord] = []
    dropped: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    n_read = 0
    stem = Path(source).stem
    for where, obj in rows:
        n_read += 1
        prompt = req_str(obj, "input", where, "the question x_e")
        answer = kilt_answer(obj, where)
        hint = "De Cao's annotated zsRE has it on every line; plain KILT zsRE lacks it"
        alternatives = [a for a in str_list(obj, "alternatives", where, hint, required=True) if a.strip()]
        rephrases = clean_rephrases(
            str_list(obj, "filtered_rephrases", where, hint, required=True), prompt, notes
        )
        if not alternatives:
            dropped["no alternatives"] += 1
            continue
        if not rephrases:
            dropped["no rephrases"] += 1
            continue
        prediction = obj.get("prediction")
        rid = str(obj["id"]) if obj.get("id") not in (None, "") else f"{stem}:{where.rsplit(':', 1)[-1]}"
        target_new = random.Random(f"{seed}/{rid}").choice(alternatives)
        meta: dict[str, Any] = {"format": "zsre-kilt", "alternatives": alternatives}
        if isinstance(prediction, str):
            meta["prediction"] = prediction
            meta["cond"] = f"{prediction} >> {target_new} || {prompt}"
        if target_new == answer:
            notes["new target equals the gold answer"] += 1
        records.append(
            EditRecord(
                prompt=prompt,
                target_new=target_new,
                target_true=answer,
                rephrases=rephrases,
                id=rid,
                meta=meta,
            )
        )
    unique_ids(records)
    if nq is not None:
        pool = nq if isinstance(nq, list) else read_nq(nq)
    else:
        pool = dataset_locality(records)
    attach_locality(records, pool, n_loc, seed)
    return Conversion(records, "zsre-kilt", source, n_read, dropped, notes)


def convert_zsre_kilt(
    path: str | os.PathLike[str],
    seed: int = 0,
    n_loc: int = 1,
    nq: str | os.PathLike[str] | list[LocalityItem] | None = None,
) -> Conversion:
    """Convert De Cao's KILT zsRE JSONL (``structured_zeroshot-*-new_annotated_final.jsonl``).

    Args:
        path: the JSONL file.
        seed: seed of the alternative drawn as the new target and of the locality sampling.
        n_loc: locality items per record (0: none).
        nq: Natural Questions locality (file, ``"hub:..."`` reference or items); ``None``: in-file questions.

    Returns:
        The conversion (records and drop counts).

    """
    return zsre_kilt_rows(read_jsonl(path, KILT_LAYOUT), str(path), seed=seed, n_loc=n_loc, nq=nq)


def loc_question(loc: str, style: str, where: str) -> str:
    """The locality prompt of a derived-form ``loc`` field in ``style`` (see the module doc)."""
    if style not in LOC_STYLES:
        raise ValueError(f"loc_style must be one of {', '.join(LOC_STYLES)}, got {style!r}")
    if not loc.startswith(NQ_PREFIX):
        raise FormatError(
            f"{where}: field 'loc' must start with {NQ_PREFIX!r} (got {loc!r:.60}); "
            "the derived zsRE form takes "
            "its locality questions from Natural Questions"
        )
    if style == "easyedit":
        return loc
    if style == "rome":
        return loc + "?"
    question = loc[len(NQ_PREFIX) :].strip()
    if not question:
        raise FormatError(f"{where}: field 'loc' holds no question after {NQ_PREFIX!r}")
    question = question[:1].upper() + question[1:]
    return question if question.endswith("?") else question + "?"


def zsre_mend_rows(rows: Iterable[Row], source: str, loc_style: str = "nq") -> Conversion:
    """Convert derived-form zsRE rows (see the module doc); the work behind :func:`convert_zsre_mend`."""
    records: list[EditRecord] = []
    dropped: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    n_read = 0
    stem = Path(source).stem
    for index, (where, obj) in enumerate(rows):
        n_read += 1
        prompt = req_str(obj, "src", where, "the question x_e")
        alt = obj.get("alt")
        if not isinstance(alt, str):
            raise FormatError(
                f"{where}: field 'alt' must be a string (got {alt!r:.60}); it is the new target"
            )
        answers = str_list(obj, "answers", where, "the gold answers; answers[0] is the old target", True)
        if not answers or not answers[0].strip():
            raise FormatError(f"{where}: field 'answers' must hold at least one non-empty answer")
        rephrase = req_str(obj, "rephrase", where, "a paraphrase of src")
        loc = req_str(obj, "loc", where, "an NQ locality question, 'nq question: ...'")
        loc_ans = req_str(obj, "loc_ans", where, "the answer of loc")
        subject = obj.get("subject")
        if subject is not None and (not isinstance(subject, str) or not subject.strip()):
            raise FormatError(f"{where}: field 'subject' must be a non-empty string (got {subject!r:.60})")
        if not alt.strip():
            dropped["empty alt"] += 1
            continue
        meta: dict[str, Any] = {"format": "zsre-mend"}
        if isinstance(obj.get("cond"), str):
            meta["cond"] = obj["cond"]
        records.append(
            EditRecord(
                prompt=prompt,
                target_new=alt,
                target_true=answers[0],
                rephrases=clean_rephrases([rephrase], prompt, notes),
                locality=[LocalityItem(loc_question(loc, loc_style, where), loc_ans)],
                subject=subject,
                id=f"{stem}:{index}",
                meta=meta,
            )
        )
    return Conversion(records, "zsre-mend", source, n_read, dropped, notes)


def convert_zsre_mend(path: str | os.PathLike[str], loc_style: str = "nq") -> Conversion:
    """Convert ROME/EasyEdit's derived zsRE JSON (``zsre_mend_train.json`` / ``zsre_mend_eval.json``).

    Args:
        path: the JSON file (a list of objects).
        loc_style: how the NQ locality question is written: ``"nq"``, ``"easyedit"`` or ``"rome"``.

    Returns:
        The conversion (records and drop counts).

    """
    if loc_style not in LOC_STYLES:
        raise ValueError(f"loc_style must be one of {', '.join(LOC_STYLES)}, got {loc_style!r}")
    rows = list_rows(read_json(path, MEND_LAYOUT), path, MEND_LAYOUT)
    return zsre_mend_rows(rows, str(path), loc_style=loc_style)
