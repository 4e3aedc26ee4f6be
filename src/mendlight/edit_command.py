"""``mendlight edit``: apply edits from the command line or a JSONL file and show what changed.

The report (:mod:`mendlight.edit_report`) shows each edit prompt and rephrase with the greedy answer before
and after the edit (:mod:`mendlight.preview`), a locality check of prompts the edit should leave alone
(:mod:`mendlight.locality_check`) and timings; ``--json`` prints it as one JSON object, and it is written
to ``edit.json`` in the run directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from mendlight.checkpoints import load_editor_checkpoint
from mendlight.cli_parser import known_classes
from mendlight.data.batch import num_rows
from mendlight.data.composition import SUBJECT_HINT, subject_in_prompt
from mendlight.data.records import EditRecord, read_records
from mendlight.edit_report import check_section, edit_rows, print_json, print_text
from mendlight.editors.base import Editor
from mendlight.editors.evaluation import record_rows
from mendlight.errors import UserInputError
from mendlight.locality_check import plan_check
from mendlight.models.functional import save_edited
from mendlight.models.loading import cache_root, resolve_model_dir
from mendlight.models.tiny import is_tiny_ref
from mendlight.preview import encode_prompts, timed_previews
from mendlight.run_control import write_json_atomic
from mendlight.run_dirs import shown_path


class EditCommandError(UserInputError, ValueError):
    """Bad arguments to ``mendlight edit``; the message says what to pass."""


def edit_records(
    prompt: str | None, target: str | None, rephrases: list[str], file: str | None, subject: str | None = None
) -> list[EditRecord]:
    """The edits of ``mendlight edit``: a record of ``--prompt``/``--target``, or the records of ``--file``.

    Targets are kept as given: the encoder adds the space between prompt and target only where it is
    missing (:meth:`mendlight.data.encoding.CausalEncoder.target_call`), so ``"Rome"`` and ``" Rome"`` make
    the same edit.

    Raises:
        EditCommandError: when both or neither of ``--file`` and ``--prompt``/``--target`` are given.

    """
    if file:
        if prompt or target or subject:
            raise EditCommandError(
                "give either --file or --prompt/--target/--subject, not both (records name their own subject)"
            )
        return read_records(file)
    if not prompt or not target:
        raise EditCommandError("mendlight edit needs --prompt and --target (or --file edits.jsonl)")
    if subject is not None and not subject_in_prompt(subject, prompt):
        raise EditCommandError(f"--subject {subject!r} does not occur in --prompt {prompt!r}; {SUBJECT_HINT}")
    return [EditRecord(prompt=prompt, target_new=target, rephrases=rephrases, subject=subject, id="cli")]


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def _hf_cache_dirs() -> list[Path]:
    """The Hugging Face cache directories: ``$HF_HOME``/``$HF_HUB_CACHE`` now and huggingface_hub's."""
    dirs = [os.environ.get(k) for k in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")]
    try:
        from huggingface_hub import constants

        dirs += [constants.HF_HOME, constants.HF_HUB_CACHE]
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        pass
    return [Path(d) for d in dirs if d]


def protected_dirs(base_ref: str | None) -> list[tuple[Path, str]]:
    """Directories ``mendlight edit --save`` never writes into, each with what it is (for the message).

    The base model's own directory (a local Hugging Face directory, or the dequantised copy of an embedded
    alias or ``.gguf`` file), mendlight's model cache (:func:`~mendlight.models.loading.cache_root`) and
    the Hugging Face cache. Every path is resolved (symlinks followed).
    """
    out: list[tuple[Path, str]] = []
    if base_ref and not is_tiny_ref(base_ref):
        source = Path(resolve_model_dir(base_ref)).expanduser()
        if source.is_dir():  # a hub name resolves to itself: its files live in the Hugging Face cache
            out.append((source.resolve(), f"the base model's directory ({base_ref})"))
    out.append((_resolved(cache_root()), "mendlight's model cache"))
    out += [(d.expanduser().resolve(), "the Hugging Face cache") for d in _hf_cache_dirs()]
    return out


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_save_dir(save: str, base_ref: str | None, overwrite: bool = False) -> Path:
    """Check that ``mendlight edit --save DIR`` can write the edited model there, before anything is edited.

    DIR must be a new or empty directory (or any directory with ``overwrite``) that can be created and
    written, and must not be, or lie inside, the base model's own directory or a model cache
    (:func:`protected_dirs`), even with ``overwrite``.

    Returns:
        DIR as given (a :class:`~pathlib.Path`).

    Raises:
        EditCommandError: saying what is wrong with DIR and what to pass instead.

    """
    out = Path(save).expanduser()
    where = out.resolve()
    for protected, what in protected_dirs(base_ref):
        if where == protected or where.is_relative_to(protected):
            inside = "is" if where == protected else "lies inside"
            raise EditCommandError(
                f"--save {save}: {inside} {what} ({protected}); mendlight never writes an edited model "
                "among the files of a model or a model cache: choose another directory (--overwrite does "
                "not allow this)"
            )
    if out.exists() and not out.is_dir():
        raise EditCommandError(f"--save {save}: is an existing file, not a directory; choose a directory")
    if out.is_dir():
        if any(out.iterdir()) and not overwrite:
            raise EditCommandError(
                f"--save {save}: the directory is not empty; choose a new or empty directory, or pass "
                "--overwrite true to replace its files"
            )
        if not os.access(out, os.W_OK | os.X_OK):
            raise EditCommandError(f"--save {save}: the directory is not writable")
        return out
    ancestor = _nearest_existing(out.absolute().parent)
    if not ancestor.is_dir():
        raise EditCommandError(f"--save {save}: cannot be created: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise EditCommandError(f"--save {save}: cannot be created: {ancestor} is not writable")
    return out


def weight_editors() -> list[str]:
    """The editors of :mod:`mendlight.editors` whose edits change the weights (they can ``--save``)."""
    import mendlight.editors as editors

    return [name for name in known_classes("model") if getattr(editors, name).edits_weights]


def check_saveable(model: Editor) -> None:
    """Refuse ``--save`` for an editor whose edit is not a change of the weights (the Cache editor)."""
    if not getattr(model, "edits_weights", True):
        name = type(model).__name__
        raise EditCommandError(
            f"--save: a {name} edit is not a weight change (it keeps answers beside the unedited model and "
            "leaves the model's weights as they are), so there is no edited model to save; drop --save, or "
            f"use an editor that changes weights ({', '.join(weight_editors())})"
        )


def run_edit(
    model: Editor,
    datamodule,
    *,
    ckpt_path: str | None,
    prompt: str | None,
    target: str | None,
    rephrases: list[str],
    file: str | None,
    save: str | None,
    subject: str | None = None,
    overwrite: bool = False,
    max_new_tokens: int | None = None,
    weights_only: bool = True,
    check: list[str] | None = None,
    n_check: int = 2,
    as_json: bool = False,
    run_dir: Callable[[], Path | None] | None = None,
) -> dict:
    """Apply the edits (all records together), report what changed, optionally save the edited model.

    ``save`` is checked first (:func:`check_saveable`, :func:`check_save_dir`): a directory that cannot be
    used fails before the checkpoint is loaded or the edit is computed.

    Args:
        model: the editor.
        datamodule: tokenises the edits and supplies the locality check's dataset prompts.
        ckpt_path: the trained editor's checkpoint (None for test-time editors).
        prompt: the edit prompt (with ``target``), or None with ``file``.
        target: the new target.
        rephrases: extra prompts that should give the new target too.
        file: a JSONL file of edit records applied together.
        save: a directory to write the edited model to.
        subject: the words of ``prompt`` that name what the fact is about (needed by subject-keyed editors).
        overwrite: allow ``save`` to replace the files of a non-empty directory.
        max_new_tokens: greedy tokens per answer.
        weights_only: load the checkpoint with ``torch.load(weights_only=True)``.
        check: locality-check prompts (instead of those :func:`~mendlight.locality_check.plan_check` picks).
        n_check: prompts of each kind the check picks from the records or the dataset (0: none).
        as_json: print the report as one JSON object instead of text.
        run_dir: returns the run directory to write ``edit.json`` into (called once the edit succeeded).

    Returns:
        The report (:mod:`mendlight.edit_report`).

    """
    start = time.perf_counter()
    if max_new_tokens is not None and max_new_tokens < 1:
        raise EditCommandError(f"--max_new_tokens must be at least 1, got {max_new_tokens}")
    if n_check < 0:
        raise EditCommandError(f"--n_check must be at least 0, got {n_check}")
    if save:
        check_saveable(model)
        check_save_dir(save, getattr(model, "hparams", {}).get("base_model"), overwrite)
    if datamodule is None:
        raise EditCommandError("mendlight edit needs a data module for tokenisation (pass -c <config>)")
    records = edit_records(prompt, target, rephrases, file, subject)
    checks = [c for c in (check or []) if c.strip()]
    if ckpt_path:
        load_editor_checkpoint(model, ckpt_path, weights_only)
    elif model.requires_training:
        raise EditCommandError(
            f"{type(model).__name__} must be trained first: pass --ckpt_path "
            "runs/<name>/version_N/checkpoints/last.ckpt (from `mendlight fit`)"
        )
    model.eval()
    model.attach_datamodule(datamodule)
    batch = datamodule.make_batch(records, train=False)
    check_start = time.perf_counter()
    plan = plan_check(records, checks, datamodule, n_check)
    check_rows = encode_prompts(datamodule, [p for _, p in plan.prompts]) if plan.prompts else None
    check_s = time.perf_counter() - check_start
    out = model.evaluate_batch(batch)
    deltas = model._last_deltas
    groups = [(["edit"] * num_rows(batch["edit"]), batch["edit"])]
    groups.append((["rephrase"] * num_rows(batch["equiv"]), batch["equiv"]))
    if check_rows is not None:
        groups.append(([k for k, _ in plan.prompts], check_rows))
    decoded, preview_s = timed_previews(model, groups, deltas, max_new_tokens)
    previews = decoded[0] + decoded[1]
    checked = decoded[2] if check_rows is not None else []
    saved = None
    if save:
        saved = str(
            save_edited(model.base, model.tokenizer, deltas, Path(save).expanduser(), overwrite=overwrite)
        )
    report = {
        "editor": type(model).__name__,
        "base_model": getattr(model, "hparams", {}).get("base_model"),
        "ckpt_path": ckpt_path,
        "edits": edit_rows(records, record_rows(batch, out)),
        "previews": [p.to_dict() for p in previews],
        "locality_check": check_section(plan, checked),
        "timings": {
            "edit_s": round(out.latency_s, 6),
            "preview_s": round(preview_s, 6),
            "check_s": round(check_s, 6),
            "total_s": round(time.perf_counter() - start, 6),
        },
        "saved": saved,
        "run": None,
    }
    directory = run_dir() if run_dir is not None else None
    if directory is not None:
        report["run"] = shown_path(directory)
        write_json_atomic(Path(directory) / "edit.json", report)
    (print_json if as_json else print_text)(report)
    return report
