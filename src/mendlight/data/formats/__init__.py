"""Converters from public model-editing dataset formats to edit records (:mod:`mendlight.data.records`).

Each format has one converter in :data:`FORMATS`, a function ``(path, **options) -> Conversion``:

=====================  =================================================================================
``zsre-kilt``          zsRE as released with KnowledgeEditor (KILT JSONL; :mod:`.zsre`)
``zsre-mend``          the derived zsRE JSON of ROME/EasyEdit (``zsre_mend_{train,eval}.json``; :mod:`.zsre`)
``fever-kilt``         FEVER as released with KnowledgeEditor (KILT JSONL, classification; :mod:`.fever`)
``wikitext-10token``   MEND's Wikitext 10-token generation edits (:mod:`.wikitext`)
``counterfact``        CounterFact as released with ROME (:mod:`.counterfact`)
=====================  =================================================================================

Locality sources are read separately (:data:`LOCALITY_FORMATS`): ``nq`` (MEND's Natural Questions JSON,
:mod:`.nq`, the ``nq`` option of ``zsre-kilt``) and ``corpus`` (passages, the ``corpus`` option of
``wikitext-10token``). A :class:`~.common.Conversion` holds the records and the rows dropped, counted by
reason. A source may also be ``"hub:<name>[:<split>]"`` (:mod:`.hub`, ``datasets.load_dataset``).

From Python::

    from mendlight.data.formats import convert, load
    records = convert("zsre-kilt", "structured_zeroshot-dev-new_annotated_final.jsonl", seed=0)
    result = load("fever-kilt", "fever-dev-kilt.jsonl")   # records + drop counts
    print(result.summary())

From the shell (writes ``OUT/<split>.jsonl`` with :func:`~mendlight.data.records.write_records`)::

    python -m mendlight.data.formats zsre-kilt structured_zeroshot-dev-new_annotated_final.jsonl OUT --seed 0
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from mendlight.data.formats.common import Conversion, FormatError
from mendlight.data.formats.counterfact import convert_counterfact, counterfact_rows
from mendlight.data.formats.fever import convert_fever_kilt, fever_kilt_rows
from mendlight.data.formats.hub import (
    HUB_PREFIX,
    HubUnavailableError,
    hub_record_format,
    load_hub_rows,
    parse_hub_ref,
)
from mendlight.data.formats.nq import read_nq
from mendlight.data.formats.wikitext import convert_wikitext_10token, read_corpus
from mendlight.data.formats.zsre import convert_zsre_kilt, convert_zsre_mend, zsre_kilt_rows
from mendlight.data.records import EditRecord

#: Format name → converter ``(path, **options) -> Conversion``.
FORMATS: dict[str, Callable[..., Conversion]] = {
    "zsre-kilt": convert_zsre_kilt,
    "zsre-mend": convert_zsre_mend,
    "fever-kilt": convert_fever_kilt,
    "wikitext-10token": convert_wikitext_10token,
    "counterfact": convert_counterfact,
}
#: Format name → row converter ``(rows, source label, **options) -> Conversion``, for the formats a hub
#: dataset of edit records can be in (``hub:<name>``; :data:`~mendlight.data.formats.hub.HUB_DATASETS`).
HUB_ROW_CONVERTERS: dict[str, Callable[..., Conversion]] = {
    "counterfact": counterfact_rows,
    "zsre-kilt": zsre_kilt_rows,
    "fever-kilt": fever_kilt_rows,
}
#: Locality sources, which give locality items or passages rather than edit records.
LOCALITY_FORMATS: dict[str, Callable[..., Any]] = {"nq": read_nq, "corpus": read_corpus}


def format_options(format_name: str) -> list[str]:
    """The option names a format's converter accepts (its keyword parameters after the path)."""
    params = list(inspect.signature(FORMATS[format_name]).parameters)
    return params[1:]


def _check_format(format_name: str) -> None:
    if format_name in FORMATS:
        return
    known = ", ".join(FORMATS)
    if format_name in LOCALITY_FORMATS:
        raise ValueError(
            f"{format_name!r} is a locality source, not an edit-record format: pass it as an option "
            f"(nq=... for zsre-kilt, corpus=... for wikitext-10token); record formats: {known}"
        )
    raise ValueError(f"unknown dataset format {format_name!r}; known formats: {known}")


def load(format_name: str, source: str | os.PathLike[str], **options: Any) -> Conversion:
    """Convert a source in ``format_name`` and return the records with the drop counts.

    Args:
        format_name: a key of :data:`FORMATS`.
        source: the file, or ``"hub:<name>[:<split>]"`` for a hub dataset of that format (the extra option
            ``repo`` then names another hub dataset path).
        **options: the converter's options (see :func:`format_options`), e.g. ``seed``, ``n_loc``.

    Returns:
        The conversion.

    Raises:
        ValueError: on an unknown format (listing the formats) or option (listing the format's options).
        FormatError: on invalid input (naming the file, line and field).
        HubUnavailableError: for a hub source that cannot be loaded (saying which local file to pass).

    """
    _check_format(format_name)
    accepted = format_options(format_name)
    is_hub = isinstance(source, str) and source.startswith(HUB_PREFIX)
    unknown = sorted(set(options) - set(accepted) - ({"repo"} if is_hub else set()))
    if unknown:
        raise ValueError(
            f"format {format_name!r} has no option(s) {', '.join(unknown)}; its options are: "
            + (", ".join(accepted) or "none")
        )
    if is_hub:
        name, split = parse_hub_ref(str(source))
        if hub_record_format(name) != format_name:
            raise ValueError(
                f"hub dataset {name!r} is in format {hub_record_format(name)!r}, not {format_name!r}"
            )
        rows, label = load_hub_rows(name, split, options.pop("repo", None))
        return HUB_ROW_CONVERTERS[format_name](rows, label, **options)
    return FORMATS[format_name](source, **options)


def convert(format_name: str, path: str | os.PathLike[str], **options: Any) -> list[EditRecord]:
    """Convert a file (or ``"hub:..."`` source) in ``format_name`` to edit records.

    The same as :func:`load` but returns only the records; use :func:`load` for the drop counts.

    Raises:
        ValueError: on an unknown format; the message lists the known formats.

    """
    return load(format_name, path, **options).records


__all__ = [
    "FORMATS",
    "LOCALITY_FORMATS",
    "Conversion",
    "FormatError",
    "HubUnavailableError",
    "convert",
    "format_options",
    "load",
]
