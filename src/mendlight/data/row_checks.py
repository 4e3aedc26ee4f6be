"""Every row a batch can build from an edit record, encoded once when the records are read.

:meth:`mendlight.data.module.EditDataModule.setup_split` calls :func:`check_rows`, so that a record with
a text too long for ``max_length`` (or one that gives no tokens) fails when it is read, naming its file,
line and field, not when a data loader draws it, possibly hours into training.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from mendlight.data.encoding import EncodingError, RowEncoder
from mendlight.data.records import EditRecord, RecordError


def check_rows(enc: RowEncoder, records: list[EditRecord], source: str = "") -> None:
    """Encode every row :meth:`~mendlight.data.module.EditDataModule.make_batch` can build from each record.

    The rows: the edit row, one per rephrase (with ``target_new``), the ``true`` row if ``target_true`` is
    set, and one per locality item (a full-text row for a generation record's item with an empty prompt); a
    generation record's prefix-cut row cannot fail once its edit row fits. Each distinct row is checked once
    (:meth:`~mendlight.data.encoding.RowEncoder.check_pair`): its target tokenised once, in batches; its
    prompt, which is truncated to fit, only if it might give no tokens at all.

    Args:
        enc: the encoder of the base model's layout.
        records: the records; each names its ``source`` (``"<file>:<line>"``) if it has one.
        source: the file, for records without a ``source``.

    Raises:
        RecordError: naming the file and line, the field and the record id: for a text too long for
            ``max_length`` (the message gives its length and says to shorten it or raise
            ``--data.init_args.max_length``), a text that gives no tokens, or a lone surrogate.

    """
    rows: dict[tuple[str, str, str, bool], tuple[EditRecord, _RowCheck]] = {}
    for record in records:  # each distinct row once, from the first record that has it
        for check in _row_checks(record):
            rows.setdefault((check.kind, check.prompt, check.target, check.verbatim), (record, check))
    scan = [text for key in rows for text in key[1:3]]
    scan += [text for r in records for text in (r.subject, r.relation, r.id) if text]
    scan += [json.dumps(r.meta, ensure_ascii=False) for r in records if r.meta]
    if _SURROGATE.search("\n".join(scan)):
        for record in records:
            _check_surrogates(record, source)
    calls: list[tuple[str, bool] | None] = [
        (check.target, True)
        if check.kind == "text"
        else enc.target_call(check.prompt, check.target, check.verbatim)
        for _, check in rows.values()
    ]
    prompts = [check.prompt for _, check in rows.values() if check.kind == "pair"]
    with enc.checking([call for call in calls if call is not None], prompts):
        for record, check in rows.values():
            try:
                if check.kind == "text":
                    enc.check_text(check.target)
                else:
                    enc.check_pair(check.prompt, check.target, verbatim=check.verbatim)
            except ValueError as err:
                raise _row_error(record, check, err, source) from err


class _RowCheck(NamedTuple):
    """A row :meth:`EditDataModule.check_rows` encodes, with the fields that hold its prompt and target.

    ``kind`` is ``"pair"`` (prompt and target) or ``"text"`` (a full-text passage, in ``target``);
    ``context`` names the rephrase of a rephrase row.
    """

    kind: str
    prompt: str
    target: str
    verbatim: bool
    prompt_field: str
    target_field: str
    context: str = ""


def _row_checks(r: EditRecord) -> list[_RowCheck]:
    """Every row :meth:`EditDataModule.make_batch` (and a locality pool) can build from a record."""
    gen = r.task == "generation"
    checks = [_RowCheck("pair", r.prompt, r.target_new, gen, "prompt", "target_new")]
    for i, text in enumerate(r.rephrases):
        checks.append(
            _RowCheck("pair", text, r.target_new, gen, f"rephrases[{i}]", "target_new", f"rephrases[{i}]")
        )
    if r.target_true is not None:
        checks.append(_RowCheck("pair", r.prompt, r.target_true, gen, "prompt", "target_true"))
    for i, item in enumerate(r.locality):
        name = f"locality[{i}]"
        if gen and not item.prompt:
            checks.append(_RowCheck("text", "", item.answer, False, f"{name}.prompt", f"{name}.answer"))
        else:
            checks.append(
                _RowCheck("pair", item.prompt, item.answer, False, f"{name}.prompt", f"{name}.answer")
            )
    return checks


def _where(record: EditRecord, source: str) -> str:
    return record.source or source or "records"


def _row_error(record: EditRecord, check: _RowCheck, err: ValueError, source: str) -> RecordError:
    """The RecordError of a row that cannot be encoded: file and line, field, record id, and what to do."""
    part = err.part if isinstance(err, EncodingError) else "target"
    field = check.prompt_field if part == "prompt" else check.target_field
    context = f", in the row of {check.context}" if check.context else ""
    head = f"{_where(record, source)}: field '{field}' (record id {record.id!r}{context})"
    if isinstance(err, EncodingError) and err.too_long:
        return RecordError(
            f"{head}: {err.what} is {err.n_tokens} tokens, longer than {err.option}={err.limit}; "
            f"shorten it or raise --data.init_args.{err.option}"
        )
    return RecordError(f"{head}: {err}; change the text or leave the record out")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_surrogates(r: EditRecord, source: str) -> None:
    """Raise a RecordError naming the first field of a record that holds a lone surrogate, if any."""
    texts: list[tuple[str, str | None]] = [
        ("prompt", r.prompt),
        ("target_new", r.target_new),
        ("target_true", r.target_true),
    ]
    texts += [(f"rephrases[{i}]", text) for i, text in enumerate(r.rephrases)]
    for i, item in enumerate(r.locality):
        texts += [(f"locality[{i}].prompt", item.prompt), (f"locality[{i}].answer", item.answer)]
    texts += [("subject", r.subject), ("relation", r.relation), ("id", r.id)]
    texts.append(("meta", json.dumps(r.meta, ensure_ascii=False)))
    for field, text in texts:
        match = _SURROGATE.search(text) if text else None
        if match is not None:
            raise RecordError(
                f"{_where(r, source)}: field '{field}' (record id {r.id!r}) holds a lone surrogate "
                f"U+{ord(match.group()):04X}, which is not Unicode text and cannot be tokenised; fix the "
                "text where the records were made"
            )
