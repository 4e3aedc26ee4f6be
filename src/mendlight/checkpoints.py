"""Checks on a ``--ckpt_path`` or ``fit --init_from`` before anything runs: where, how safely, whose.

* Only local files are accepted. A URL (``http://``, ``s3://``...) is refused unless its scheme is allowed
  explicitly (``--allow_remote_ckpt https``); it is then downloaded once into the cache and, like every
  checkpoint mendlight reads, loaded with ``torch.load(weights_only=True)``, which unpickles tensors and plain
  containers only, never code (Lightning would load a remote checkpoint with ``weights_only=False``).
* A missing, empty, truncated or foreign file is one :class:`~mendlight.errors.CheckpointError`.
* The checkpoint must be an editor checkpoint for the editor class and base model of the config. A mismatch
  is an error naming both sides; ``--allow_other_base true`` applies an editor to another base model of the
  same shapes deliberately. (The edited weights themselves are compared when the checkpoint is loaded into
  the editor: :meth:`mendlight.editors.base.Editor.on_load_checkpoint`.)
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import LightningModule

from mendlight.cache_dirs import cache_root
from mendlight.errors import CheckpointError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
#: ``--ckpt_path`` values Lightning resolves itself (from the run's checkpoint callbacks).
SPECIAL_PATHS = ("last", "best", "hpc", "registry")


def url_scheme(path: str) -> str | None:
    """The scheme of a URL (``https``), or None for a local path."""
    match = _SCHEME.match(path)
    return match.group(1).lower() if match else None


def fetch_remote(url: str, allowed: list[str]) -> Path:
    """Download a checkpoint URL whose scheme is allowed into the cache; return the local file.

    Raises:
        CheckpointError: if the scheme is not in ``allowed`` or the download fails.

    """
    scheme = url_scheme(url)
    allowed_lower = [s.lower() for s in allowed]
    if scheme not in allowed_lower:
        raise CheckpointError(
            f"--ckpt_path {url!r} is a remote URL; mendlight loads only local checkpoint files. Download it "
            f"and pass the local path, or allow the scheme with --allow_remote_ckpt '[{scheme}]' (it is then "
            "loaded with weights_only=True: tensors only, no code)"
        )
    target = cache_root() / "checkpoints" / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".ckpt")
    if target.is_file():
        return target
    import fsspec

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with fsspec.open(url, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(tmp, target)
    except Exception as err:  # any transport error: one message
        tmp.unlink(missing_ok=True)
        why = f"{type(err).__name__}: {err}"
        raise CheckpointError(f"--ckpt_path {url!r}: the download failed ({why})") from err
    return target


def read_checkpoint(path: str | os.PathLike[str], option: str = "--ckpt_path") -> dict[str, Any]:
    """Load a local checkpoint with ``weights_only=True`` and check that it is a mendlight editor checkpoint.

    Args:
        path: the checkpoint file.
        option: the command-line option that named it, for the messages.

    Raises:
        CheckpointError: if the file is missing, empty, truncated, holds pickled code or other objects, or
            is not an editor checkpoint; the message names the file.

    """
    path = Path(path)
    if not path.is_file():
        hint = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
        raise CheckpointError(
            f"{option} {str(path)!r} {hint}; trained editors are saved as "
            "runs/<name>/version_N/checkpoints/last.ckpt (or best-<step>.ckpt)"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"{option} {str(path)!r} is an empty file, not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbage, refused pickle...: all one message
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if zipfile.is_zipfile(path) and "Unsupported global" in str(err):
            why = "it holds pickled objects other than tensors and plain values, which mendlight never loads"
        else:
            why = f"it is truncated or not a PyTorch checkpoint ({type(err).__name__}: {first[:200]})"
        raise CheckpointError(f"{option} {str(path)!r} cannot be read: {why}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "mendlight" not in ckpt:
        raise CheckpointError(
            f"{option} {str(path)!r} is not a mendlight editor checkpoint (no editor state and base-model "
            "record); pass a checkpoint written by `mendlight fit`"
        )
    return ckpt


def _class_of(class_path: str | None) -> Any:
    if not class_path:
        return None
    module, _, name = str(class_path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _same_class(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return True  # nothing to compare
    cls_a, cls_b = _class_of(a), _class_of(b)
    if cls_a is not None and cls_b is not None:
        return cls_a is cls_b
    return str(a).rsplit(".", 1)[-1] == str(b).rsplit(".", 1)[-1]


def check_agreement(
    path: str,
    ckpt: dict[str, Any],
    class_path: str | None,
    base_model: str | None,
    allow_other_base: bool,
    option: str = "--ckpt_path",
) -> None:
    """Refuse a checkpoint made for another editor class or (unless allowed) another base model.

    Args:
        path: the checkpoint's path, for the message.
        ckpt: the loaded checkpoint (:func:`read_checkpoint`).
        class_path: the editor class the config names (``model.class_path``).
        base_model: the base model the config names (``model.init_args.base_model``).
        allow_other_base: ``--allow_other_base``: a different base model is deliberate.
        option: the command-line option that named the checkpoint, for the messages.

    Raises:
        CheckpointError: naming both sides of the mismatch.

    """
    hparams = ckpt.get("hyper_parameters") or {}
    ckpt_class = hparams.get("_class_path")
    if not _same_class(ckpt_class, class_path):
        theirs, ours = str(ckpt_class).rsplit(".", 1)[-1], str(class_path).rsplit(".", 1)[-1]
        raise CheckpointError(
            f"{option} {path!r} holds a {theirs} editor ({ckpt_class}) but the config asks for {ours} "
            f"({class_path}); test the checkpoint with the config it was trained with "
            "(-c runs/<name>/version_N/config.yaml) or pick the matching editor"
        )
    ckpt_base = (ckpt.get("mendlight") or {}).get("base_model") or hparams.get("base_model")
    if base_model and ckpt_base and str(ckpt_base) != str(base_model) and not allow_other_base:
        raise CheckpointError(
            f"{option} {path!r} was trained on base model {ckpt_base!r} but the config names "
            f"{base_model!r}; use the config it was trained with (-c runs/<name>/version_N/config.yaml), or "
            "pass --allow_other_base true to apply it to this base model deliberately (its edited weights "
            "must have the same shapes)"
        )


def check_editor_state(editor: str, state: dict[str, Any], own: dict[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointError` unless a checkpoint's tensors fit the editor's (names and shapes)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} here"
        for k in sorted(set(state) & set(own))
        if isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)):
        if items:
            shown = ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")
            parts.append(f"{label}: {shown}")
    raise CheckpointError(
        f"the checkpoint does not fit this {editor} editor ({'; '.join(parts)}): it was made for another "
        "editor, architecture or set of edited weights; use the config it was trained with "
        "(-c runs/<name>/version_N/config.yaml)"
    )


def load_editor_checkpoint(model: LightningModule, ckpt_path: str, weights_only: bool = True) -> None:
    """Load a trained editor checkpoint (editor weights, α and normalisation statistics) into ``model``.

    Args:
        model: the editor, built with the checkpoint's options.
        ckpt_path: a local checkpoint file.
        weights_only: read it with ``torch.load(weights_only=True)`` (tensors only, no code); False only for
            a local file the user trusts.

    Raises:
        CheckpointError: for a missing or unreadable file.

    """
    if weights_only:
        checkpoint = read_checkpoint(ckpt_path)  # one CheckpointError for a missing or unreadable file
    else:  # the user's explicit choice, for a local file they trust
        path = Path(ckpt_path)
        if not path.is_file():
            raise CheckpointError(
                f"checkpoint {ckpt_path!r} does not exist (look in runs/<name>/version_N/checkpoints)"
            )
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])


def warm_start(model: LightningModule, path: str, class_path: str | None) -> int:
    """Start a training run from a trained editor's weights (``fit --init_from``); return the step it had.

    The editor networks, learned step sizes or regularisers and normalisation statistics are loaded, as by
    :func:`load_editor_checkpoint`; the optimiser, step count, schedule and data order start afresh. That is
    what continuing an editor in another setting needs (more simultaneous edits per step, another learning
    rate), where ``--ckpt_path`` would restore the old run's state exactly.

    Args:
        model: the editor the config built; it must have the checkpoint's editor class, edited weights and
            network sizes.
        path: a local checkpoint file written by ``mendlight fit``.
        class_path: the editor class the config names, checked against the checkpoint's.

    Raises:
        CheckpointError: for a missing, unreadable or foreign file, another editor class or base model
            (unless ``--allow_other_base``), or tensors that do not fit this editor; the message names
            ``--init_from``.

    """
    checkpoint = read_checkpoint(path, option="--init_from")
    base_model = getattr(getattr(model, "hparams", None), "base_model", None)
    allow_other_base = bool(getattr(model, "allow_other_base", False))
    check_agreement(path, checkpoint, class_path, base_model, allow_other_base, option="--init_from")
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    step = int(checkpoint.get("global_step", 0) or 0)
    if hasattr(model, "checkpoint_step"):
        model.checkpoint_step = 0  # a fresh run: its own steps count from 0
    return step
