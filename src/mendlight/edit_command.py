"""``mendlight edit``: apply edits from the command line or a JSONL file and show what changed."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mendlight.checkpoints import read_checkpoint
from mendlight.data.records import EditRecord, read_records
from mendlight.editors.base import Editor
from mendlight.editors.evaluation import prompt_inputs, record_rows
from mendlight.errors import UserInputError
from mendlight.models.functional import save_edited
from mendlight.models.loading import cache_root, resolve_model_dir
from mendlight.models.tiny import is_tiny_ref


class EditCommandError(UserInputError, ValueError):
    """Bad arguments to ``mendlight edit``; the message says what to pass."""


def _records(
    prompt: str | None, target: str | None, rephrases: list[str], file: str | None
) -> list[EditRecord]:
    if file:
        if prompt or target:
            raise EditCommandError("give either --file or --prompt/--target, not both")
        return read_records(file)
    if not prompt or not target:
        raise EditCommandError("mendlight edit needs --prompt and --target (or --file edits.jsonl)")
    return [EditRecord(prompt=prompt, target_new=target, rephrases=rephrases, id="cli")]


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


def check_saveable(model: Editor) -> None:
    """Refuse ``--save`` for an editor whose edit is not a change of the weights (the Cache editor)."""
    if not getattr(model, "edits_weights", True):
        name = type(model).__name__
        raise EditCommandError(
            f"--save: {name} does not change the model's weights (its edits are answers kept beside the "
            "unedited model), so there is no edited model to save; drop --save or use a weight editor "
            "(MEND, ENN, KE, FT, FTKL)"
        )


def load_editor_checkpoint(model: Editor, ckpt_path: str, weights_only: bool = True) -> None:
    """Load a trained editor checkpoint (editor weights, α and normalisation statistics) into ``model``."""
    if weights_only:
        checkpoint = read_checkpoint(ckpt_path)  # one CheckpointError for a missing or unreadable file
    else:  # the user's explicit choice, for a local file they trust
        path = Path(ckpt_path)
        if not path.is_file():
            raise EditCommandError(
                f"checkpoint {ckpt_path!r} does not exist (look in runs/<name>/version_N/checkpoints)"
            )
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])


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
    overwrite: bool = False,
    max_new_tokens: int | None = None,
    weights_only: bool = True,
) -> dict:
    """Apply the edits (all records together), print pre/post greedy outputs, optionally save the model.

    ``save`` is checked first (:func:`check_saveable`, :func:`check_save_dir`): a directory that cannot be
    used fails before the checkpoint is loaded or the edit is computed.
    """
    if max_new_tokens is not None and max_new_tokens < 1:
        raise EditCommandError(f"--max_new_tokens must be at least 1, got {max_new_tokens}")
    if save:
        check_saveable(model)
        check_save_dir(save, getattr(model, "hparams", {}).get("base_model"), overwrite)
    if datamodule is None:
        raise EditCommandError("mendlight edit needs a data module for tokenisation (pass -c <config>)")
    records = _records(prompt, target, rephrases, file)
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
    out = model.evaluate_batch(batch)
    deltas = model._last_deltas
    rows = record_rows(batch, out)
    tok = model.tokenizer
    report = []
    for group in ("edit", "equiv"):
        rows_g = batch[group]
        if not rows_g["input_ids"].shape[0]:
            continue
        ids, mask = prompt_inputs(rows_g)
        pre = model.greedy_outputs(rows_g, model.pre_edit_deltas(), max_new_tokens)
        post = model.greedy_outputs(rows_g, deltas, max_new_tokens)
        for r in range(ids.shape[0]):
            text = tok.decode(ids[r][mask[r].bool()], skip_special_tokens=True)
            report.append(
                {
                    "kind": "edit" if group == "edit" else "rephrase",
                    "prompt": text,
                    "pre": pre[r],
                    "post": post[r],
                }
            )
    print(f"\nApplied {len(records)} edit(s) with {type(model).__name__} in {out.latency_s * 1000:.0f} ms")
    for rec, row in zip(records, rows, strict=True):
        print(
            f"  {rec.prompt!r} -> {rec.target_new!r}: target is the argmax: "
            f"{'yes' if row['es_edit'] else 'no'}"
            + (f"; rephrases {row['equiv_success']}/{row['equiv_total']}" if row["equiv_total"] else "")
        )
    for item in report:
        print(f"\n[{item['kind']}] {item['prompt']}\n  before: {item['pre']!r}\n  after:  {item['post']!r}")
    saved = None
    if save:
        saved = str(save_edited(model.base, tok, deltas, Path(save).expanduser(), overwrite=overwrite))
        print(f"\nSaved the edited model to {saved} (load it with transformers' from_pretrained)")
    return {"rows": rows, "outputs": report, "saved": saved, "latency_s": out.latency_s}
