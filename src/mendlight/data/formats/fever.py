"""FEVER fact checking, KnowledgeEditor's release (docs/algorithm.md §5.3): binary classification records.

De Cao et al.'s ``fever-{train,dev}-kilt.jsonl`` has one KILT object per line::

    {"id": "...", "input": "Nikolaj Coster-Waldau worked with the Fox Broadcasting Company.",
     "output": [{"answer": "SUPPORTS", "provenance": [...]}],
     "prediction": "SUPPORTS", "alternatives": ["REFUTES"], "logit": 3.41,
     "filtered_rephrases": ["Nikolaj Coster-Waldau has worked with Fox Broadcasting Company.", ...]}

Rows without alternatives or without rephrases (after removing the claim itself) are dropped and counted,
as in MEND. A record is ``task="classification"`` with ``prompt`` = the claim, ``target_true`` = the gold
label (``SUPPORTS`` → ``"true"``, ``REFUTES`` → ``"false"``), ``rephrases`` = the filtered rephrases, and:

* ``target_new``: MEND's edit label is the fact checker's own ``prediction``, flipped to ``alternatives[0]``
  with probability 0.5, so about half of the edits ask the model to keep its prediction (paper:
  y_e ~ Bernoulli(0.5)). The coin is ``random.Random(f"{seed}/{id}").random() < 0.5``. With
  ``edit_from="label"`` the gold label is flipped instead (for a base model other than De Cao's BERT, whose
  predictions the file records);
* ``meta``: ``flipped``, ``prediction``, ``logit`` and KE's conditioning text ``cond``
  (``"{prediction} >> {edit label} || {claim}"``);
* ``locality``: ``n_loc`` other claims of the same file with their gold labels (MEND's FEVER locality).
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
    read_jsonl,
    req_str,
    str_list,
    unique_ids,
)
from mendlight.data.formats.locality import attach_locality, dataset_locality
from mendlight.data.records import EditRecord

FEVER_LAYOUT = (
    "FEVER as released with KnowledgeEditor (KILT JSONL: input, output, prediction, alternatives, ...)"
)
#: FEVER labels and the classification labels they become.
LABELS: dict[str, str] = {"SUPPORTS": "true", "REFUTES": "false"}
OTHER: dict[str, str] = {"SUPPORTS": "REFUTES", "REFUTES": "SUPPORTS"}
EDIT_FROM: tuple[str, ...] = ("prediction", "label")
FLIP_PROB = 0.5


def _label(value: Any, where: str, name: str) -> str:
    if value not in LABELS:
        raise FormatError(
            f"{where}: field '{name}' must be 'SUPPORTS' or 'REFUTES' (got {value!r:.60}); "
            "KnowledgeEditor's FEVER has no NOT ENOUGH INFO claims"
        )
    return value


def fever_kilt_rows(
    rows: Iterable[Row], source: str, seed: int = 0, n_loc: int = 1, edit_from: str = "prediction"
) -> Conversion:
    """Convert KILT FEVER rows (see the module doc); the work behind :func:`convert_fever_kilt`.

    Args:
        rows: ``(where, object)`` pairs.
        source: the source name for the result and for default ids (``"<stem>:<line>"``).
        seed: seed of the flip coins and of the locality sampling.
        n_loc: locality items per record (0: none).
        edit_from: ``"prediction"`` (MEND: flip the released prediction) or ``"label"`` (flip the gold label).

    Returns:
        The conversion, with ``dropped`` counting ``"no alternatives"`` and ``"no rephrases"``.

    Raises:
        FormatError: on a missing or mistyped field or an unknown label (naming file, line and field).
        ValueError: on an unknown ``edit_from``.

    """
    if edit_from not in EDIT_FROM:
        raise ValueError(f"edit_from must be one of {', '.join(EDIT_FROM)}, got {edit_from!r}")
    records: list[EditRecord] = []
    dropped: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    n_read = 0
    stem = Path(source).stem
    hint = "KnowledgeEditor's FEVER has it on every line; plain KILT FEVER lacks it"
    for where, obj in rows:
        n_read += 1
        claim = req_str(obj, "input", where, "the claim")
        gold = _label(kilt_answer(obj, where), where, "output[0].answer")
        alternatives = str_list(obj, "alternatives", where, hint, required=True)
        for i, alt in enumerate(alternatives):
            _label(alt, where, f"alternatives[{i}]")
        rephrases = clean_rephrases(
            str_list(obj, "filtered_rephrases", where, hint, required=True), claim, notes
        )
        prediction = obj.get("prediction")
        if edit_from == "prediction" or prediction is not None:
            prediction = _label(prediction, where, "prediction")
        if not alternatives:
            dropped["no alternatives"] += 1
            continue
        if not rephrases:
            dropped["no rephrases"] += 1
            continue
        rid = str(obj["id"]) if obj.get("id") not in (None, "") else f"{stem}:{where.rsplit(':', 1)[-1]}"
        base, alt = (prediction, alternatives[0]) if edit_from == "prediction" else (gold, OTHER[gold])
        flipped = random.Random(f"{seed}/{rid}").random() < FLIP_PROB
        edit_label = alt if flipped else base
        meta: dict[str, Any] = {"format": "fever-kilt", "flipped": flipped, "edit_from": edit_from}
        if prediction is not None:
            meta["prediction"] = prediction
        if isinstance(obj.get("logit"), int | float):
            meta["logit"] = obj["logit"]
        meta["cond"] = f"{base} >> {edit_label} || {claim}"
        notes["edits flipped"] += flipped
        records.append(
            EditRecord(
                prompt=claim,
                target_new=LABELS[edit_label],
                target_true=LABELS[gold],
                rephrases=rephrases,
                id=rid,
                meta=meta,
                task="classification",
            )
        )
    unique_ids(records)
    attach_locality(records, dataset_locality(records), n_loc, seed)
    return Conversion(records, "fever-kilt", source, n_read, dropped, notes)


def convert_fever_kilt(
    path: str | os.PathLike[str], seed: int = 0, n_loc: int = 1, edit_from: str = "prediction"
) -> Conversion:
    """Convert KnowledgeEditor's KILT FEVER JSONL (``fever-{train,dev}-kilt.jsonl``).

    Args:
        path: the JSONL file.
        seed: seed of the flip coins and of the locality sampling.
        n_loc: locality items per record (0: none).
        edit_from: ``"prediction"`` (MEND) or ``"label"``: which label the 0.5 coin may flip.

    Returns:
        The conversion (records and drop counts).

    """
    return fever_kilt_rows(
        read_jsonl(path, FEVER_LAYOUT), str(path), seed=seed, n_loc=n_loc, edit_from=edit_from
    )
