"""Shared pieces of the format converters: the :class:`Conversion` result, source errors, and readers.

A converter reads a file in a public dataset layout (JSONL with one object per line, or one JSON document)
as *rows*: ``(where, obj)`` pairs, where ``where`` names the file and the line (``"dev.jsonl:7"``) or the
list position (``"zsre_mend_eval.json[3]"``). Every error names that place and the field, and says what the
layout expects (:class:`FormatError`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mendlight.data.jsonl import loads_line, split_jsonl
from mendlight.data.records import EditRecord, RecordError, RecordFileNotFoundError

#: One row of a source: where it is (file and line, or list position) and the parsed JSON value.
Row = tuple[str, Any]


class FormatError(RecordError):
    """A file in a public dataset format is invalid; the message names the file, the line and the field."""


class FormatFileNotFoundError(FormatError, RecordFileNotFoundError):
    """A source file does not exist (a :class:`FormatError` and a ``FileNotFoundError``)."""


@dataclass
class Conversion:
    """The result of converting one source: the records, and what was dropped and why.

    Args:
        records: the converted edit records, in source order.
        format: the format name (a key of :data:`mendlight.data.formats.FORMATS`).
        source: the file (or hub dataset) that was read.
        n_read: rows read from the source.
        dropped: rows left out, counted by reason (e.g. ``{"no alternatives": 3}``).
        notes: other counts worth reporting (e.g. rephrases removed because they equal the prompt).

    """

    records: list[EditRecord]
    format: str
    source: str
    n_read: int
    dropped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)

    @property
    def n_dropped(self) -> int:
        """Number of rows left out, over all reasons."""
        return sum(self.dropped.values())

    def summary(self) -> str:
        """One paragraph for people: rows read, records kept, and the drop reasons with their counts."""
        lines = [
            f"{self.format}: read {self.n_read} rows from {self.source}, kept {len(self.records)} records"
        ]
        if self.dropped:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.dropped.items()))
            lines.append(f"dropped {self.n_dropped} ({reasons})")
        else:
            lines.append("dropped 0")
        lines += [f"note: {note}: {n}" for note, n in sorted(self.notes.items())]
        return "\n".join(lines)


def _check_file(path: str | os.PathLike[str], layout: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FormatFileNotFoundError(f"{path}: no such file; expected {layout}")
    return path


def read_jsonl(path: str | os.PathLike[str], layout: str) -> list[Row]:
    r"""Read a JSONL file as rows ``("<file>:<line>", object)``; blank lines are skipped.

    Lines end at ``"\n"`` only (:func:`~mendlight.data.jsonl.split_jsonl`): U+2028 and the other
    characters ``str.splitlines`` also splits on may occur inside JSON strings; CRLF files read the same.

    Args:
        path: the file.
        layout: what the format expects, for error messages (e.g. ``"KILT zsRE JSONL"``).

    Raises:
        FormatFileNotFoundError: if the file does not exist (a ``FormatError`` and a ``FileNotFoundError``).
        FormatError: on invalid UTF-8 (naming the line), invalid JSON (naming the line and column, or
            nesting too deep to parse), or a line that is not an object.

    """
    path = _check_file(path, layout)
    expect = f"{layout} has one JSON object per line"
    rows: list[Row] = []
    for lineno, line in split_jsonl(path, f"expected {layout}", FormatError):
        where = f"{path}:{lineno}"
        rows.append((where, as_object(loads_line(line, where, expect, FormatError), where, layout)))
    return rows


def read_json(path: str | os.PathLike[str], layout: str) -> Any:
    """Read a whole JSON document.

    Raises:
        FormatFileNotFoundError: if the file does not exist (a ``FormatError`` and a ``FileNotFoundError``).
        FormatError: on invalid UTF-8 or invalid JSON (naming the line and column, or nesting too deep to
            parse).

    """
    path = _check_file(path, layout)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not valid UTF-8 ({err}); expected {layout}") from err
    except json.JSONDecodeError as err:
        raise FormatError(
            f"{path}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno}); expected {layout}"
        ) from err
    except RecursionError as err:
        raise FormatError(
            f"{path}: invalid JSON (nesting too deep: more levels of [...] and {{...}} than the parser "
            f"allows); expected {layout}"
        ) from err
    except ValueError as err:
        raise FormatError(f"{path}: invalid JSON ({err}); expected {layout}") from err


def list_rows(data: Any, path: str | os.PathLike[str], layout: str) -> list[Row]:
    """Rows ``("<file>[<i>]", object)`` of a JSON document that must be a list of objects."""
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON list of objects ({layout}), got {type(data).__name__}")
    return [(f"{path}[{i}]", as_object(obj, f"{path}[{i}]", layout)) for i, obj in enumerate(data)]


def as_object(obj: Any, where: str, layout: str) -> dict[str, Any]:
    """Return ``obj`` if it is a JSON object, else raise :class:`FormatError`."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: expected a JSON object ({layout}), got {type(obj).__name__}")
    return obj


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def req_str(obj: dict[str, Any], key: str, where: str, hint: str, name: str | None = None) -> str:
    """The non-empty string field ``key`` of ``obj``.

    Args:
        obj: the JSON object.
        key: the field.
        where: the place of ``obj`` (file and line), for the message.
        hint: what the field holds in the format, for the message.
        name: the field's full name in messages (e.g. ``"output[0].answer"``); defaults to ``key``.

    Raises:
        FormatError: if the field is missing or not a non-empty string.

    """
    name = name or key
    if key not in obj:
        raise FormatError(f"{where}: missing field '{name}' ({hint})")
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise FormatError(f"{where}: field '{name}' must be a non-empty string (got {_show(value)}); {hint}")
    return value


def str_list(obj: dict[str, Any], key: str, where: str, hint: str, required: bool = False) -> list[str]:
    """The list-of-strings field ``key`` of ``obj`` (``[]`` if absent or null, unless ``required``).

    Raises:
        FormatError: if the field is required and missing, not a list, or holds a non-string.

    """
    if key not in obj or obj[key] is None:
        if required:
            raise FormatError(f"{where}: missing field '{key}' ({hint})")
        return []
    value = obj[key]
    if not isinstance(value, list):
        raise FormatError(f"{where}: field '{key}' must be a list of strings (got {_show(value)}); {hint}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise FormatError(f"{where}: field '{key}[{i}]' must be a string (got {_show(item)}); {hint}")
    return value


def kilt_answer(obj: dict[str, Any], where: str) -> str:
    """The first gold answer of a KILT object: ``output[0].answer``.

    Both the JSONL layout (a list of ``{"answer": ...}``) and the hub ``datasets`` layout (a dict of lists,
    ``{"answer": [...]}``) are read.

    Raises:
        FormatError: if ``output`` is missing or holds no answer string.

    """
    output = obj.get("output")
    if isinstance(output, dict):  # hub datasets turn a list of structs into a struct of lists
        answers = output.get("answer") or []
        answer = answers[0] if isinstance(answers, list) and answers else None
    elif isinstance(output, list) and output and isinstance(output[0], dict):
        answer = output[0].get("answer")
    else:
        raise FormatError(
            f"{where}: field 'output' must be a non-empty list of {{\"answer\": ...}} objects "
            f"(got {output!r:.60}); KILT puts the gold answers there"
        )
    if not isinstance(answer, str) or not answer.strip():
        raise FormatError(
            f"{where}: field 'output[0].answer' must be a non-empty string (got {answer!r:.60})"
        )
    return answer


def clean_rephrases(rephrases: Iterable[str], prompt: str, notes: Counter[str]) -> list[str]:
    """Drop blank rephrases, rephrases equal to the prompt (counted in ``notes``) and repeats; keep order."""
    seen: set[str] = set()
    kept: list[str] = []
    for text in rephrases:
        if not text.strip():
            notes["blank rephrases removed"] += 1
        elif text.strip() == prompt.strip():
            notes["rephrases equal to the prompt removed"] += 1
        elif text not in seen:
            seen.add(text)
            kept.append(text)
    return kept


def unique_ids(records: list[EditRecord]) -> None:
    """Make record ids unique in place (``id``, ``id~2``, ``id~3``...) so the JSONL can be read back."""
    used: set[str] = set()
    for record in records:
        base = record.id or "record"
        new_id, n = base, 1
        while new_id in used:
            n += 1
            new_id = f"{base}~{n}"
        record.id = new_id
        used.add(new_id)
