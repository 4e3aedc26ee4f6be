r"""JSON Lines, read and written so that any text survives: lines end at "\n" only.

Readers split on ``"\n"`` alone (not :meth:`str.splitlines`, which also breaks at U+2028, U+0085, form
feeds... that may occur inside JSON strings), and turn every parse failure into the caller's error class
naming the file and line. Writers escape those characters, so line-splitting tools read the files too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: Characters that line-splitting tools (``str.splitlines``, editors, some JSONL readers) take for line
#: breaks besides "\n", and lone surrogates, which UTF-8 cannot encode: :func:`write_records` escapes them.
_ESCAPE_ON_WRITE = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def split_jsonl(path: Path, expect: str, error: type[Exception]) -> list[tuple[int, str]]:
    r"""The non-blank lines of a UTF-8 JSONL file, ``(line number, text)``, split on ``"\n"`` only.

    Only ``"\n"`` ends a line, as in the JSON Lines format: other characters that ``str.splitlines`` takes
    for line breaks (U+2028, U+0085, form feeds...) may occur inside JSON strings. The ``"\r"`` of a CRLF
    file stays at the end of its line, where JSON reads it as whitespace.

    Args:
        path: the file (it must exist).
        expect: what the file should hold, ending the message of an invalid UTF-8 error.
        error: the error class to raise (a RecordError class: one message, status 2).

    Raises:
        Exception: ``error`` if the file is not valid UTF-8, naming the line of the first bad byte.

    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = data.count(b"\n", 0, err.start) + 1
        raise error(f"{path}:{lineno}: not valid UTF-8 ({err}); {expect}") from err
    return [(lineno, line) for lineno, line in enumerate(text.split("\n"), start=1) if line.strip()]


def loads_line(line: str, where: str, expect: str, error: type[Exception]) -> Any:
    """Parse one JSONL line; every failure of ``json.loads`` becomes ``error`` naming ``where``.

    Args:
        line: the text of the line.
        where: ``"<file>:<line>"``, the prefix of the message.
        expect: what a line should hold, ending the message (e.g. ``"each line must hold one JSON object"``).
        error: the error class to raise (a RecordError class: one message, status 2).

    Raises:
        Exception: ``error`` on invalid JSON (with the column), nesting deeper than the parser allows,
            or a number Python cannot convert (an integer of more than 4300 digits).

    """
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise error(f"{where}: invalid JSON ({err.msg} at column {err.colno}); {expect}") from err
    except RecursionError as err:
        raise error(
            f"{where}: invalid JSON (nesting too deep: more levels of [...] and {{...}} than the parser "
            f"allows); {expect}"
        ) from err
    except ValueError as err:
        raise error(f"{where}: invalid JSON ({err}); {expect}") from err


def escape_line_breaks(line: str) -> str:
    r"""A JSON text with every character of :data:`_ESCAPE_ON_WRITE` written as a ``\uXXXX`` escape.

    Valid JSON stays valid and equal: these characters can only occur inside strings.
    """
    return _ESCAPE_ON_WRITE.sub(_escape_char, line)
