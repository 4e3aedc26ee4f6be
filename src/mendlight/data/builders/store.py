"""Where the offline dataset builders keep their builds: content-hashed, and complete or absent.

A build is a directory with ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` (edit records) and
``manifest.json`` (what went into it and its counts, with the content ``hash`` that names it). By default
builds live in ``cache_root()/"data"/"<kind>-<hash>"``; a second call with the same inputs finds the
complete build and returns at once. :func:`write_build` writes into a temporary sibling and moves it into
place with ``os.replace``, so an interrupted build leaves nothing that looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, TypeVar

from mendlight.cache_dirs import cache_root
from mendlight.data.records import EditRecord, write_records

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_FILES: tuple[str, ...] = tuple(f"{split}.jsonl" for split in SPLITS)
MANIFEST = "manifest.json"
T = TypeVar("T")


def content_hash(key: dict[str, Any]) -> str:
    """The 16-hex-digit SHA-256 of a JSON-serialisable cache key (sorted keys)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def parse_options(cls: type[T], options: dict[str, object], kind: str) -> T:
    """Build the options dataclass ``cls`` of a builder from keyword options, naming unknown ones.

    Raises:
        TypeError: for an option ``cls`` has no field for (the message lists the allowed ones).

    """
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"unknown {kind} builder option(s) {unknown}; allowed: {', '.join(allowed)}")
    return cls(**options)


def build_dir(kind: str, digest: str, out_dir: Path | str | None = None) -> Path:
    """``out_dir`` if given, else the cache directory ``cache_root()/"data"/"<kind>-<digest>"``."""
    if out_dir is not None:
        return Path(out_dir)
    return cache_root() / "data" / f"{kind}-{digest}"


def is_complete_build(path: Path, digest: str | None = None) -> bool:
    """Whether ``path`` holds a complete build: every split file and a manifest (with hash ``digest``)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if digest is not None and manifest.get("hash") != digest:
        return False
    return all((Path(path) / name).is_file() for name in SPLIT_FILES)


def read_manifest(path: Path | str) -> dict[str, Any]:
    """The manifest of a build directory."""
    return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))


def check_replaceable(target: Path, kind: str) -> None:
    """Raise unless ``target`` is absent or a directory holding nothing but (part of) a build.

    Raises:
        FileExistsError: naming ``target`` and what to do.

    """
    if target.exists() and not (target.is_dir() and set(os.listdir(target)) <= {*SPLIT_FILES, MANIFEST}):
        raise FileExistsError(
            f"{target} exists and holds files other than a {kind} build; pass an empty or new --out directory"
        )


def write_build(
    target: Path, splits: dict[str, list[EditRecord]], manifest: dict[str, Any], kind: str
) -> Path:
    """Write a build atomically: the split files and ``manifest.json``, replacing an old build at ``target``.

    Args:
        target: the build directory (see :func:`check_replaceable`).
        splits: records per split (every split of :data:`SPLITS`).
        manifest: the manifest, including its ``hash``.
        kind: the builder's name, for messages.

    Returns:
        ``target``.

    """
    check_replaceable(target, kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for split in SPLITS:
            write_records(tmp / f"{split}.jsonl", splits[split])
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        _install(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _install(tmp: Path, target: Path) -> None:
    """Move a finished build into place, replacing an old build at ``target``."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        if not is_complete_build(target):  # another process may have installed the same build meanwhile
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
