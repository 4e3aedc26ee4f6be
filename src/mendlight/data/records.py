"""The edit-record schema (:class:`EditRecord`), its validation, and JSONL reading/writing.

One record is one edit: a prompt x_e, the new target y_e, optional rephrases x'_e that must follow the edit,
and optional locality facts that must not. On disk a dataset split is a JSONL file, one JSON object per line::

    {"prompt": "The capital of France is", "target_new": "Rome", "target_true": "Paris",
     "rephrases": ["Q: What is the capital of France? A:"],
     "locality": [{"prompt": "The capital of Peru is", "answer": "Lima"}],
     "subject": "France", "relation": "capital", "id": "capital/France", "meta": {}}

Only ``prompt`` and ``target_new`` are required. ``task`` says how the target is scored:

* ``completion`` (default): the target tokens follow the prompt (question answering, facts);
* ``classification``: a binary claim; ``target_new``, ``target_true`` and every locality answer are
  ``"true"`` or ``"false"`` (the paper's FEVER setting: the sign of one logit);
* ``generation``: ``target_new`` is a continuation of the passage ``prompt`` (the paper's Wikitext
  10-token setting); a locality item with an empty ``prompt`` scores its whole ``answer`` as text
  (perplexity), and an empty ``rephrases`` list lets the data module cut prefixes of the prompt instead.

Only a newline ends a line: other characters that ``str.splitlines`` takes for line breaks (U+2028,
U+0085...) may occur inside JSON strings, and :func:`write_records` escapes them. Every error names the
file, the line and the field, and says what to do (:class:`RecordError`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mendlight.data.jsonl import escape_line_breaks, loads_line, split_jsonl
from mendlight.errors import UserInputError

#: Keys a record object may have, in the order :meth:`EditRecord.to_dict` writes them.
RECORD_KEYS: tuple[str, ...] = (
    "prompt",
    "target_new",
    "target_true",
    "rephrases",
    "locality",
    "subject",
    "relation",
    "id",
    "meta",
    "task",
)
REQUIRED_KEYS: tuple[str, ...] = ("prompt", "target_new")
LOCALITY_KEYS: tuple[str, ...] = ("prompt", "answer")
#: Task types: what a record's target is and how it is scored.
TASKS: tuple[str, ...] = ("completion", "classification", "generation")
#: The labels of a ``classification`` record (its targets and its locality answers).
CLASS_LABELS: tuple[str, ...] = ("false", "true")

_REQUIRED_HINTS = {
    "prompt": "every record needs the edit prompt x_e (the text the new target follows)",
    "target_new": "every record needs the new target",
}
_OPTIONAL_STRING_HINTS = {
    "target_true": "give the old (true) target, or null / leave the field out",
    "subject": "give the subject of the fact, or null / leave the field out",
    "relation": "give the relation name, or null / leave the field out",
    "id": "give a unique string id, or leave the field out to use '<file stem>:<line>'",
}


class RecordError(UserInputError, ValueError):
    """An edit record or a records file is invalid; the message names file, line and field and what to do."""


class RecordFileNotFoundError(RecordError, FileNotFoundError):
    """A records file or dataset directory does not exist (also a ``FileNotFoundError``)."""


@dataclass
class LocalityItem:
    """An unrelated fact that an edit must leave unchanged: a prompt and the answer the model should keep.

    Args:
        prompt: the locality input x_loc.
        answer: its answer, scored as the label of x_loc.

    """

    prompt: str
    answer: str

    def to_dict(self) -> dict[str, str]:
        """Return ``{"prompt": ..., "answer": ...}``."""
        return {"prompt": self.prompt, "answer": self.answer}


@dataclass
class EditRecord:
    """One edit: a prompt, its new target, and the rephrases and locality facts used to evaluate it.

    Construction validates every field (raising :class:`RecordError`); locality items given as
    ``{"prompt", "answer"}`` dicts are converted to :class:`LocalityItem`.

    Args:
        prompt: the edit input x_e; a completion target follows it after one space (added by the encoder
            only where neither the prompt's end nor the target's start is whitespace).
        target_new: the new target y_e the edited model should produce.
        target_true: the old (true) target, if known; used to flag facts the unedited model already knew.
        rephrases: equivalence inputs x'_e, other wordings that should produce ``target_new`` after the edit.
        locality: unrelated facts whose answers the edit must not change.
        subject: the subject of the fact (for reports and subject-disjoint splits).
        relation: the relation name (for reports).
        id: a unique id; :func:`read_records` fills ``"<file stem>:<line>"`` when missing.
        meta: free-form JSON-serialisable information (sources, template kinds, ...).
        task: ``"completion"`` (default), ``"classification"`` or ``"generation"`` (see the module doc).
        source: where the record was read, ``"<file>:<line>"`` (set by :func:`read_records`, else None);
            not a record field: it is not written by :meth:`to_dict` and does not take part in ``==``.

    """

    prompt: str
    target_new: str
    target_true: str | None = None
    rephrases: list[str] = field(default_factory=list)
    locality: list[LocalityItem] = field(default_factory=list)
    subject: str | None = None
    relation: str | None = None
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    task: str = "completion"
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.locality, list):
            self.locality = [
                LocalityItem(**item) if _is_locality_dict(item) else item for item in self.locality
            ]
        _validate(self._raw_dict(), f"EditRecord(id={self.id!r})")

    def _raw_dict(self) -> dict[str, Any]:
        loc = self.locality
        if isinstance(loc, list):
            loc = [item.to_dict() if isinstance(item, LocalityItem) else item for item in loc]
        return {key: (loc if key == "locality" else getattr(self, key)) for key in RECORD_KEYS}

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict with exactly the keys of :data:`RECORD_KEYS`, in order."""
        return {
            "prompt": self.prompt,
            "target_new": self.target_new,
            "target_true": self.target_true,
            "rephrases": list(self.rephrases),
            "locality": [item.to_dict() for item in self.locality],
            "subject": self.subject,
            "relation": self.relation,
            "id": self.id,
            "meta": dict(self.meta),
            "task": self.task,
        }

    @classmethod
    def from_dict(cls, d: Any, source: str = "<record>") -> EditRecord:
        """Validate a parsed JSON object and build a record from it.

        Args:
            d: the parsed object (normally a dict read from one JSONL line).
            source: where it came from, used as the prefix of error messages (e.g. ``"data/x.jsonl:7"``).

        Raises:
            RecordError: naming ``source``, the field and what to do when anything is missing or invalid.

        """
        _validate(d, source)
        return cls(
            prompt=d["prompt"],
            target_new=d["target_new"],
            target_true=d.get("target_true"),
            rephrases=list(d.get("rephrases") or []),
            locality=[LocalityItem(item["prompt"], item["answer"]) for item in d.get("locality") or []],
            subject=d.get("subject"),
            relation=d.get("relation"),
            id=d.get("id"),
            meta=dict(d.get("meta") or {}),
            task=d.get("task") or "completion",
        )


def _is_locality_dict(item: Any) -> bool:
    return isinstance(item, dict) and set(item) == set(LOCALITY_KEYS)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a deeply nested JSON value
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _validate(d: Any, source: str) -> None:
    """Raise :class:`RecordError` unless ``d`` is a valid record object."""
    if not isinstance(d, dict):
        raise RecordError(
            f"{source}: expected a JSON object with fields {', '.join(RECORD_KEYS)}, got {type(d).__name__}; "
            "write one object per line"
        )
    unknown = [key for key in d if key not in RECORD_KEYS]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise RecordError(
            f"{source}: unknown field(s) {names}; allowed fields are {', '.join(RECORD_KEYS)} "
            "(check the spelling, or move extra information into 'meta')"
        )
    task = d.get("task")
    if task is None:
        task = "completion"
    elif task not in TASKS:
        raise RecordError(
            f"{source}: field 'task' must be one of {', '.join(TASKS)} (got {_show(task)}); "
            "leave it out for prompt-completion records"
        )
    for key in REQUIRED_KEYS:
        if key not in d:
            raise RecordError(f"{source}: missing field '{key}'; {_REQUIRED_HINTS[key]}")
        if not _nonempty_str(d[key]):
            raise RecordError(
                f"{source}: field '{key}' must be a non-empty string (got {_show(d[key])}); "
                f"{_REQUIRED_HINTS[key]}"
            )
    for key, hint in _OPTIONAL_STRING_HINTS.items():
        value = d.get(key)
        if value is not None and not _nonempty_str(value):
            raise RecordError(
                f"{source}: field '{key}' must be a non-empty string or null (got {_show(value)}); {hint}"
            )
    rephrases = d.get("rephrases")
    if rephrases is not None:
        if not isinstance(rephrases, list):
            raise RecordError(
                f"{source}: field 'rephrases' must be a list of strings (got {_show(rephrases)}); "
                "wrap a single rephrase in [...]"
            )
        for i, text in enumerate(rephrases):
            if not _nonempty_str(text):
                raise RecordError(
                    f"{source}: field 'rephrases[{i}]' must be a non-empty string (got {_show(text)}); "
                    "remove it or give the rephrased prompt"
                )
    locality = d.get("locality")
    if locality is not None:
        if not isinstance(locality, list):
            raise RecordError(
                f'{source}: field \'locality\' must be a list of {{"prompt", "answer"}} objects '
                f"(got {_show(locality)}); wrap a single item in [...]"
            )
        for i, item in enumerate(locality):
            _validate_locality_item(item, f"locality[{i}]", source, task)
    if task == "classification":
        _validate_labels(d, source)
    meta = d.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise RecordError(
            f"{source}: field 'meta' must be a JSON object (got {_show(meta)}); "
            "use {} or leave the field out"
        )


def _validate_labels(d: dict[str, Any], source: str) -> None:
    """A classification record's targets and locality answers must be class labels."""
    labels = " or ".join(repr(label) for label in CLASS_LABELS)
    for key in ("target_new", "target_true"):
        value = d.get(key)
        if value is not None and value not in CLASS_LABELS:
            raise RecordError(
                f"{source}: field '{key}' of a classification record must be {labels} (got {_show(value)}); "
                "map the dataset's labels when converting (e.g. SUPPORTS -> 'true')"
            )
    for i, item in enumerate(d.get("locality") or []):
        answer = item.answer if isinstance(item, LocalityItem) else item["answer"]
        if answer not in CLASS_LABELS:
            raise RecordError(
                f"{source}: field 'locality[{i}].answer' of a classification record must be {labels} "
                f"(got {_show(answer)})"
            )


def _validate_locality_item(item: Any, name: str, source: str, task: str = "completion") -> None:
    if isinstance(item, LocalityItem):
        item = item.to_dict()
    if not isinstance(item, dict):
        raise RecordError(
            f'{source}: field \'{name}\' must be an object {{"prompt": ..., "answer": ...}} '
            f"(got {_show(item)})"
        )
    unknown = [key for key in item if key not in LOCALITY_KEYS]
    if unknown:
        raise RecordError(
            f"{source}: field '{name}' has unknown key(s) {', '.join(repr(k) for k in unknown)}; "
            "a locality item has exactly 'prompt' and 'answer'"
        )
    for key in LOCALITY_KEYS:
        if key not in item:
            raise RecordError(
                f"{source}: field '{name}.{key}' is missing; a locality item needs both 'prompt' and 'answer'"
            )
        if key == "prompt" and task == "generation" and item[key] == "":
            continue  # generation: an empty prompt scores the whole answer as text
        if not _nonempty_str(item[key]):
            raise RecordError(
                f"{source}: field '{name}.{key}' must be a non-empty string (got {_show(item[key])}); "
                "a locality item needs both 'prompt' and 'answer'"
                + (" (only generation records may leave the prompt empty)" if key == "prompt" else "")
            )


def read_records(path: str | os.PathLike[str]) -> list[EditRecord]:
    r"""Read and validate a JSONL file of edit records.

    Lines end at ``"\n"`` only (a CRLF file reads the same); blank lines are skipped. A record without an
    ``id`` gets ``"<file stem>:<line>"``; every record's :attr:`~EditRecord.source` is ``"<file>:<line>"``.

    Args:
        path: the JSONL file.

    Returns:
        The records in file order.

    Raises:
        RecordFileNotFoundError: if the file does not exist (a ``RecordError`` and a ``FileNotFoundError``).
        RecordError: on invalid UTF-8, invalid JSON (including nesting too deep to parse), an invalid
            record, a duplicate id, or a file without records; the message names the file, the line and the
            field.

    """
    path = Path(path)
    if not path.is_file():
        raise RecordFileNotFoundError(
            f"{path}: no such records file; expected a JSONL file with one edit record per line"
        )
    expect = "each line must hold one JSON object"
    records: list[EditRecord] = []
    seen: dict[str, int] = {}
    for lineno, line in split_jsonl(path, "save the file as UTF-8", RecordError):
        source = f"{path}:{lineno}"
        obj = loads_line(line, source, expect, RecordError)
        try:
            record = EditRecord.from_dict(obj, source)
        except RecursionError as err:  # a value nested almost as deep as the parser allows
            raise RecordError(f"{source}: a value is nested too deep to check; {expect}") from err
        record.source = source
        if record.id is None:
            record.id = f"{path.stem}:{lineno}"
        if record.id in seen:
            raise RecordError(
                f"{source}: field 'id' repeats {record.id!r} already used on line {seen[record.id]}; "
                "ids must be unique within a file"
            )
        seen[record.id] = lineno
        records.append(record)
    if not records:
        raise RecordError(f"{path}: the file holds no records; expected one JSON object per line")
    return records


def record_line(record: EditRecord) -> str:
    r"""One JSONL line (without its ``"\n"``) of a record, safe for any line-splitting reader.

    ``json.dumps`` with ``ensure_ascii=False`` keeps non-ASCII text readable; the characters other tools
    take for line breaks (U+2028, U+2029, U+0085, ``\x0b``, ``\x0c``, ``\x1c``-``\x1e``) and lone
    surrogates (which UTF-8 cannot encode) are then written as ``\uXXXX`` escapes. That is still the same
    JSON: outside strings ``json.dumps`` writes ASCII only, so these characters can only be inside strings.
    A high surrogate directly followed by a low one (two code points in Python) reads back as the one
    character the pair encodes, as JSON defines.
    """
    return escape_line_breaks(json.dumps(record.to_dict(), ensure_ascii=False))


def write_records(path: str | os.PathLike[str], records: Iterable[EditRecord]) -> Path:
    r"""Write records as JSONL, atomically (a temporary file in the same directory, then ``os.replace``).

    Each record is one line (:func:`record_line`): only ``"\n"`` ends a line, whatever the text holds.

    Args:
        path: the destination file; parent directories are created.
        records: the records to write (at least one).

    Returns:
        The destination path.

    Raises:
        ValueError: if there is nothing to write (such a file could not be read back).

    """
    path = Path(path)
    lines = []
    for record in records:
        if not isinstance(record, EditRecord):
            raise TypeError(f"write_records expects EditRecord objects, got {type(record).__name__}")
        lines.append(record_line(record) + "\n")
    if not lines:
        raise ValueError(f"{path}: no records to write; an empty records file cannot be read back")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
