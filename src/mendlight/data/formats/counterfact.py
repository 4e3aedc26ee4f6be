"""CounterFact from ROME (docs/algorithm.md §5.6): ``counterfact.json`` / ``multi_counterfact.json``.

The file is a JSON list of cases::

    {"case_id": 0, "pararel_idx": 2796,
     "requested_rewrite": {"prompt": "The mother tongue of {} is", "relation_id": "P103",
                           "target_new": {"str": "English", "id": "Q1860"},
                           "target_true": {"str": "French", "id": "Q150"},
                           "subject": "Danielle Darrieux"},
     "paraphrase_prompts": [...], "neighborhood_prompts": [...],
     "attribute_prompts": [...], "generation_prompts": [...]}

A case becomes one completion record: ``prompt`` = the rewrite prompt with ``{}`` replaced by the subject
(ROME's ``prompt.format(subject)``), ``target_new``/``target_true`` = the ``str`` of each target,
``rephrases`` = the paraphrase prompts, ``subject``, ``relation`` = ``relation_id`` and ``id`` =
``case_id``. The neighbourhood prompts are other subjects that share the *true* object, so, as ROME scores
them (NS: the model should still prefer ``target_true``), each becomes a locality item answered with
``target_true``. Attribute and generation prompts, and the target ids, go to ``meta``.

The hub copy ``azhx/counterfact`` has the same fields (see :mod:`mendlight.data.formats.hub`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

from mendlight.data.formats.common import (
    Conversion,
    FormatError,
    Row,
    clean_rephrases,
    list_rows,
    read_json,
    req_str,
    str_list,
    unique_ids,
)
from mendlight.data.records import EditRecord, LocalityItem

CF_LAYOUT = (
    "CounterFact as released with ROME (a JSON list of {case_id, requested_rewrite, paraphrase_prompts, ...})"
)


def _target(rewrite: dict[str, Any], key: str, where: str) -> tuple[str, Any]:
    """The ``str`` (and ``id``) of ``requested_rewrite.<key>``."""
    value = rewrite.get(key)
    name = f"requested_rewrite.{key}"
    if not isinstance(value, dict):
        raise FormatError(
            f'{where}: field \'{name}\' must be an object {{"str": ..., "id": ...}} (got {value!r:.60})'
        )
    return req_str(value, "str", where, "the target object as text", name=f"{name}.str"), value.get("id")


def counterfact_record(obj: dict[str, Any], where: str, notes: Counter[str]) -> EditRecord:
    """One CounterFact case as an edit record (see the module doc).

    Raises:
        FormatError: on a missing or mistyped field, or a rewrite prompt without exactly one ``{}``.

    """
    rewrite = obj.get("requested_rewrite")
    if not isinstance(rewrite, dict):
        raise FormatError(
            f"{where}: field 'requested_rewrite' must be an object with prompt, subject, "
            "target_new, target_true "
            f"(got {rewrite!r:.60})"
        )
    template = req_str(
        rewrite, "prompt", where, "a template with {} for the subject", "requested_rewrite.prompt"
    )
    if template.count("{}") != 1:
        raise FormatError(
            f"{where}: field 'requested_rewrite.prompt' must contain '{{}}' exactly once, "
            "where the subject goes "
            f"(got {template!r:.60})"
        )
    subject = req_str(rewrite, "subject", where, "the subject of the fact", "requested_rewrite.subject")
    target_new, new_id = _target(rewrite, "target_new", where)
    target_true, true_id = _target(rewrite, "target_true", where)
    prompt = template.replace("{}", subject)
    relation = rewrite.get("relation_id")
    hint = "a list of prompt strings"
    neighbours = str_list(obj, "neighborhood_prompts", where, hint)
    case_id = obj.get("case_id")
    meta: dict[str, Any] = {
        "format": "counterfact",
        "target_new_id": new_id,
        "target_true_id": true_id,
        "attribute_prompts": str_list(obj, "attribute_prompts", where, hint),
        "generation_prompts": str_list(obj, "generation_prompts", where, hint),
    }
    if obj.get("pararel_idx") is not None:
        meta["pararel_idx"] = obj["pararel_idx"]
    return EditRecord(
        prompt=prompt,
        target_new=target_new,
        target_true=target_true,
        rephrases=clean_rephrases(str_list(obj, "paraphrase_prompts", where, hint), prompt, notes),
        locality=[LocalityItem(p, target_true) for p in neighbours if p.strip()],
        subject=subject,
        relation=relation if isinstance(relation, str) and relation.strip() else None,
        id=str(case_id) if case_id is not None else where,
        meta=meta,
    )


def counterfact_rows(rows: Iterable[Row], source: str) -> Conversion:
    """Convert CounterFact rows; the work behind :func:`convert_counterfact`.

    Rows whose new target equals the true one are dropped (``"target_new equals target_true"``): such an
    edit changes nothing.
    """
    records: list[EditRecord] = []
    dropped: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    n_read = 0
    for where, obj in rows:
        n_read += 1
        record = counterfact_record(obj, where, notes)
        if record.target_new == record.target_true:
            dropped["target_new equals target_true"] += 1
            continue
        records.append(record)
    unique_ids(records)
    return Conversion(records, "counterfact", source, n_read, dropped, notes)


def convert_counterfact(path: str | os.PathLike[str]) -> Conversion:
    """Convert ROME's ``counterfact.json`` (or ``multi_counterfact.json``).

    Args:
        path: the JSON file (a list of cases).

    Returns:
        The conversion (records and drop counts).

    """
    return counterfact_rows(list_rows(read_json(path, CF_LAYOUT), path, CF_LAYOUT), str(path))
