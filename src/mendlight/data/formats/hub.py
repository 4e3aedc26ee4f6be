"""Loading the public datasets from the Hugging Face hub with ``datasets.load_dataset``.

A hub source is written ``"hub:<name>[:<split>]"`` wherever a file is accepted (the ``source`` of
:func:`mendlight.data.formats.load`, the ``nq`` option of ``zsre-kilt``, the ``corpus`` option of
``wikitext-10token``). :data:`HUB_DATASETS` says which hub dataset each name loads and which local file to
pass instead. Hub rows go through the same row converters as local files. This module only loads rows;
the reader of each kind calls it (:func:`mendlight.data.formats.nq.hub_nq`,
:func:`mendlight.data.formats.wikitext.hub_corpus`, and :func:`mendlight.data.formats.load` for edit
records), so it imports no format module.

Offline, nothing is attempted: with ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` set, or when
``load_dataset`` fails (no connection, unknown or uncached dataset), a :class:`HubUnavailableError` names the
dataset and the local file format to pass instead.

De Cao et al.'s annotated zsRE and FEVER (with ``alternatives`` and ``filtered_rephrases``) have no known
public hub copy (KILT's ``kilt_tasks`` lacks those fields), so ``zsre`` and ``fever`` need ``repo=`` naming
a hub dataset with that layout; ``counterfact`` defaults to ``azhx/counterfact`` (ROME's fields, splits
``train``/``test``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mendlight.data.formats.common import Row

HUB_PREFIX = "hub:"
_TRUE = {"1", "true", "yes", "on"}


class HubUnavailableError(ConnectionError):
    """A hub dataset cannot be loaded (offline, or the load failed); the message says what to pass instead."""


@dataclass(frozen=True)
class HubSource:
    """Where a named dataset lives on the hub, what it gives, and the local alternative.

    Args:
        path: the ``load_dataset`` path (``None``: no known public copy; ``repo=`` must name one).
        config: the ``load_dataset`` configuration name, if any.
        split: the default split.
        kind: ``"records"`` (edit records), ``"nq"`` (locality questions) or ``"corpus"`` (passages).
        local: the local file and format to pass instead, for error messages.
        format: for ``"records"``, the local format whose row converter reads the hub rows.

    """

    path: str | None
    config: str | None
    split: str
    kind: str
    local: str
    format: str | None = None


HUB_DATASETS: dict[str, HubSource] = {
    "counterfact": HubSource(
        "azhx/counterfact",
        None,
        "test",
        "records",
        "ROME's counterfact.json with format 'counterfact'",
        "counterfact",
    ),
    "zsre": HubSource(
        None,
        None,
        "validation",
        "records",
        "De Cao's structured_zeroshot-dev-new_annotated_final.jsonl with format 'zsre-kilt' "
        "(or zsre_mend_eval.json with format 'zsre-mend')",
        "zsre-kilt",
    ),
    "fever": HubSource(
        None,
        None,
        "validation",
        "records",
        "De Cao's fever-dev-kilt.jsonl with format 'fever-kilt'",
        "fever-kilt",
    ),
    "natural_questions": HubSource(
        "natural_questions",
        None,
        "validation",
        "nq",
        'MEND\'s data/nq/validation.json ({"questions": [...], "answers": [...]}) as the nq option of '
        "format 'zsre-kilt' (--nq FILE)",
    ),
    "nq_open": HubSource(
        "nq_open",
        None,
        "validation",
        "nq",
        'an NQ file ({"questions": [...], "answers": [...]}) as the nq option of format '
        "'zsre-kilt' (--nq FILE)",
    ),
    "wikitext": HubSource(
        "wikitext",
        "wikitext-103-raw-v1",
        "validation",
        "corpus",
        "a plain-text corpus (paragraphs separated by blank lines, e.g. wikitext-103-raw's "
        "wiki.valid.raw) as "
        "the corpus option of format 'wikitext-10token' (--corpus FILE)",
    ),
}


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` asks for offline mode."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def parse_hub_ref(ref: str) -> tuple[str, str | None]:
    """Split ``"hub:<name>[:<split>]"`` (or a bare ``"<name>[:<split>]"``) into name and split."""
    body = ref[len(HUB_PREFIX) :] if ref.startswith(HUB_PREFIX) else ref
    name, _, split = body.partition(":")
    return name, split or None


def hub_source(name: str, kind: str | None = None) -> HubSource:
    """The :data:`HUB_DATASETS` entry of ``name``, checked against the ``kind`` the caller needs.

    Raises:
        ValueError: on an unknown name (listing the known ones) or a dataset of another kind.

    """
    if name not in HUB_DATASETS:
        raise ValueError(f"unknown hub dataset {name!r}; known: {', '.join(sorted(HUB_DATASETS))}")
    source = HUB_DATASETS[name]
    if kind is not None and source.kind != kind:
        names = ", ".join(sorted(n for n, s in HUB_DATASETS.items() if s.kind == kind))
        raise ValueError(f"hub dataset {name!r} gives {source.kind}, not {kind}; use one of: {names}")
    return source


def load_hub_rows(name: str, split: str | None = None, repo: str | None = None) -> tuple[list[Row], str]:
    """Load a named hub dataset split as rows ``("hub:<name>[<split>]:<i>", dict)``.

    Args:
        name: a key of :data:`HUB_DATASETS`.
        split: the split (default: the entry's).
        repo: a hub dataset path to load instead of the entry's (required for ``zsre`` and ``fever``).

    Returns:
        The rows and the source label ``"hub:<path>[<split>]"``.

    Raises:
        ValueError: on an unknown name.
        HubUnavailableError: offline, without a known hub copy, or when ``load_dataset`` fails; the message
            says which local file to pass instead.

    """
    source = hub_source(name)
    split = split or source.split
    path = repo or source.path
    instead = f"pass a local file instead: {source.local}"
    if path is None:
        raise HubUnavailableError(
            f"hub dataset {name!r}: no public hub copy of this layout is known; "
            f"give repo=<hub dataset with the same "
            f"fields>, or {instead}"
        )
    if hub_offline():
        raise HubUnavailableError(
            f"hub dataset {name!r} ({path}) cannot be loaded: offline mode is on (HF_HUB_OFFLINE or "
            f"HF_DATASETS_OFFLINE is set); {instead}"
        )
    try:
        from datasets import load_dataset

        data = (
            load_dataset(path, source.config, split=split)
            if source.config
            else load_dataset(path, split=split)
        )
    except Exception as err:  # any failure of the download or of the cache lookup
        raise HubUnavailableError(
            f"hub dataset {name!r} ({path}, split {split!r}) could not be loaded "
            f"({type(err).__name__}: {err}); "
            f"{instead}"
        ) from err
    label = f"{HUB_PREFIX}{path}[{split}]"
    return [(f"{HUB_PREFIX}{name}[{split}]:{i}", dict(row)) for i, row in enumerate(data)], label


def hub_record_format(name: str) -> str:
    """The local format name whose converter reads the rows of hub dataset ``name``."""
    return str(hub_source(name, "records").format)
