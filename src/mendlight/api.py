"""The Python API: edit a model from a script or a notebook, with a trained editor or a test-time one.

    import mendlight

    editor = mendlight.load_editor("runs/smollm2_qa/version_0")        # a trained editor (best checkpoint)
    editor = mendlight.load_editor("FT", model=model, tokenizer=tok)  # or a test-time editor, your model
    result = editor.edit(prompts=["The capital of France is"], targets=["Rome"])
    result.summary["es_edit"], result.records[0]["post_output"]
    result.save_pretrained("edited-model")   # a plain Hugging Face directory
    result.undo()                            # an in-place edit restored exactly

Edits are given as :class:`~mendlight.data.records.EditRecord` objects, dicts in the record format
(``prompt``, ``target_new`` or ``target``, optional ``rephrases`` and ``locality``), or plain
``prompts``/``targets`` lists. All of them are made at once (one batched edit) unless ``sequential=True``,
which makes them one after another, each on the model the previous ones left. The result holds the edited
model — a copy by default, the editor's own base model (the object you passed) with ``in_place=True`` — the
parameter deltas, and the edit metrics of every record, measured as ``mendlight test`` measures them.
"""

from __future__ import annotations

import copy
import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.utilities import move_data_to_device

from mendlight.checkpoints import load_editor_checkpoint
from mendlight.data.composition import SUBJECT_HINT, subject_in_prompt
from mendlight.data.records import EditRecord
from mendlight.editors.base import Editor
from mendlight.editors.evaluation import record_rows
from mendlight.errors import UserInputError
from mendlight.models.functional import ParamDeltas, save_edited
from mendlight.models.in_memory import register_model
from mendlight.reporting import summarise

_EDITOR_CLASSES = ("MEND", "MALMEN", "ENN", "KE", "FT", "FTKL", "Cache")
_HPARAM_KEYS_DROPPED = ("_class_path", "_instantiator")


class APIError(UserInputError, ValueError):
    """A bad argument to the Python API; the message says what to pass."""


def _editor_class(name: str) -> type[Editor]:
    module = importlib.import_module("mendlight.editors")
    if name not in _EDITOR_CLASSES:
        raise APIError(
            f"unknown editor {name!r}: choose one of {', '.join(_EDITOR_CLASSES)} or a checkpoint path"
        )
    return getattr(module, name)


def _checkpoint_file(source: Path) -> Path:
    """The checkpoint a path names: the file itself, or a run directory's best (else last) checkpoint."""
    if source.is_file():
        return source
    fit = source / "fit.json"
    best = json.loads(fit.read_text()).get("best_checkpoint") if fit.is_file() else None
    if best:  # fit.json names it relative to where fit ran: look for it in this run's checkpoints/ too
        for candidate in (Path(best), source / "checkpoints" / Path(best).name):
            if candidate.is_file():
                return candidate
    last = source / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    raise APIError(
        f"{source} holds no checkpoint: pass a .ckpt file or a run directory of `mendlight fit` "
        "(runs/<name>/version_N, with checkpoints/)"
    )


def _class_from_path(class_path: str | None, where: Path) -> type[Editor]:
    if not class_path:
        raise APIError(
            f"{where} is not a mendlight editor checkpoint (its hyperparameters name no editor class)"
        )
    return _editor_class(class_path.rsplit(".", 1)[-1])


def _plain(hparams: dict | None) -> dict[str, Any]:
    return {k: v for k, v in (hparams or {}).items() if k not in _HPARAM_KEYS_DROPPED}


def load_editor(
    source: str | Path,
    model: Any = None,
    tokenizer: Any = None,
    *,
    device: str | torch.device | None = None,
    dataset: str | None = None,
    max_length: int | None = None,
    allow_other_base: bool = False,
    **options: Any,
) -> ModelEditor:
    """Load an editor to edit a model from Python.

    Args:
        source: a trained editor — a checkpoint file (``.ckpt``) or a run directory of ``mendlight fit``
            (its best checkpoint, else ``last.ckpt``) — or the name of an editor that needs no training
            (``"FT"``, ``"FTKL"``, ``"Cache"``).
        model: the model to edit: a ``transformers`` model object you hold (with ``tokenizer``), or a model
            reference (an embedded alias such as ``"smollm2-135m"``, a directory, a ``.gguf`` file, a hub
            name). Default: the checkpoint's base model, or the editor's default.
        tokenizer: the tokenizer of a model object.
        device: where to run (``"cuda"``, ``"cpu"``); default: the model object's device, else the CPU.
        dataset: the records FT+KL draws its locality rows from (default: the checkpoint's, else ``facts``).
        max_length: longest row in tokens (default: the checkpoint's, else 128).
        allow_other_base: apply a trained editor to a base model whose edited weights differ from those it
            was trained on (same shapes), deliberately.
        **options: editor options (e.g. ``edit_lr=1e-3, max_steps=20`` for FT); they override a
            checkpoint's.

    Returns:
        A :class:`ModelEditor`.

    Raises:
        APIError: for an unknown editor name, a path with no checkpoint, or an editor that must be trained.
        mendlight.errors.CheckpointError: for an unreadable checkpoint or one trained on another model.

    """
    from mendlight.checkpoints import read_checkpoint
    from mendlight.data.module import EditDataModule

    checkpoint, data_hparams = None, {}
    path = Path(str(source)).expanduser()
    if isinstance(source, Path) or path.exists() or str(source).endswith(".ckpt"):
        if not path.exists():
            raise APIError(f"checkpoint {str(source)!r} does not exist")
        ckpt_file = _checkpoint_file(path)
        checkpoint = read_checkpoint(str(ckpt_file))
        hparams = checkpoint.get("hyper_parameters") or {}
        cls = _class_from_path(hparams.get("_class_path"), ckpt_file)
        init = {**_plain(hparams), **options}
        data_hparams = _plain(checkpoint.get("datamodule_hyper_parameters"))
    else:
        cls = _editor_class(str(source))
        if cls.requires_training:
            raise APIError(
                f"{cls.__name__} must be trained first: pass its checkpoint or run directory "
                "(runs/<name>/version_N from `mendlight fit`), or use FT, FTKL or Cache"
            )
        init = dict(options)
    if model is not None and not isinstance(model, str | Path):
        init["base_model"] = register_model(model, tokenizer)
        if device is None:
            device = next(model.parameters()).device
    elif model is not None:
        init["base_model"] = str(model)
    editor = cls(**init)
    if checkpoint is not None:
        editor.allow_other_base = allow_other_base
        load_editor_checkpoint(editor, str(ckpt_file))
    editor.eval()
    if device is not None:
        editor.to(device)
    datamodule = EditDataModule(
        dataset=dataset or data_hparams.get("dataset", "facts"),
        dataset_options=None if dataset else data_hparams.get("dataset_options"),
        tokenizer=editor.hparams.base_model,
        max_length=max_length or data_hparams.get("max_length", 128),
    )
    return ModelEditor(editor, datamodule, data_hparams)


def _records(
    edits: Any,
    prompts: list[str] | None,
    targets: list[str] | None,
    rephrases: list[list[str]] | None,
    subjects: list[str] | None = None,
) -> list[EditRecord]:
    if edits is not None and (prompts is not None or targets is not None or subjects is not None):
        raise APIError("give either edits or prompts/targets (and subjects), not both")
    if edits is None:
        if not prompts or targets is None or len(prompts) != len(targets):
            raise APIError("prompts and targets must be lists of the same, non-zero length")
        if rephrases is not None and len(rephrases) != len(prompts):
            raise APIError("rephrases must hold one list of rephrasings per prompt")
        if subjects is not None and len(subjects) != len(prompts):
            raise APIError(f"subjects must hold one subject per prompt: {len(subjects)} for {len(prompts)}")
        for i, subject in enumerate(subjects or []):
            if not subject_in_prompt(subject, prompts[i]):
                raise APIError(
                    f"subject {i} ({subject!r}) does not occur in its prompt {prompts[i]!r}; {SUBJECT_HINT}"
                )
        edits = [
            {"prompt": p, "target_new": t, "rephrases": list(rephrases[i]) if rephrases else []}
            | ({"subject": subjects[i]} if subjects else {})
            for i, (p, t) in enumerate(zip(prompts, targets, strict=True))
        ]
    if isinstance(edits, EditRecord | dict):
        edits = [edits]
    out = []
    for i, edit in enumerate(edits):
        if isinstance(edit, EditRecord):
            out.append(edit)
            continue
        if not isinstance(edit, dict):
            raise APIError(f"edit {i} is a {type(edit).__name__}; give EditRecord objects or dicts")
        d = dict(edit)
        if "target" in d and "target_new" not in d:
            d["target_new"] = d.pop("target")
        d.setdefault("id", f"edit-{i}")
        out.append(EditRecord.from_dict(d, source=f"edit {i}"))
    if not out:
        raise APIError("no edits given")
    return out


@torch.no_grad()
def _write(model: torch.nn.Module, deltas: ParamDeltas) -> dict[str, torch.Tensor]:
    """Add ``deltas`` to ``model``'s weights in place; return the original values (for an exact undo)."""
    params = dict(model.named_parameters())
    originals = {}
    for name, delta in deltas.items():
        param = params[name]
        originals[name] = param.detach().clone()
        param.add_(delta.to(device=param.device, dtype=param.dtype))
    return originals


class ModelEditor:
    """An editor ready to edit its base model from Python (made by :func:`load_editor`).

    Args:
        editor: the editor (a :class:`~mendlight.editors.base.Editor`), with its base model.
        datamodule: the data module that turns records into rows for that model.
        trained_data_options: the data module options the editor was trained with (its checkpoint's
            ``datamodule_hyper_parameters``: dataset, n_edits, n_loc, seed, ...); empty when untrained.

    """

    def __init__(self, editor: Editor, datamodule: Any, trained_data_options: dict | None = None) -> None:
        self.editor = editor
        self.datamodule = datamodule
        self.trained_data_options = dict(trained_data_options or {})

    @property
    def model(self) -> torch.nn.Module:
        """The base model the editor edits (the object passed to :func:`load_editor`, if one was)."""
        return self.editor.base

    @property
    def tokenizer(self) -> Any:
        """The tokenizer rows are made with (a copy of a passed tokenizer, padding on the right)."""
        return self.editor.tokenizer

    def edit(
        self,
        edits: Any = None,
        *,
        prompts: list[str] | None = None,
        targets: list[str] | None = None,
        rephrases: list[list[str]] | None = None,
        subjects: list[str] | None = None,
        sequential: bool = False,
        in_place: bool = False,
        preview_tokens: int = 8,
    ) -> EditResult:
        """Make edits and measure them.

        Args:
            edits: one edit or a list: :class:`~mendlight.data.records.EditRecord` objects or record dicts
                (``prompt``, ``target_new`` or ``target``, optional ``rephrases``, ``locality``).
            prompts: the edit prompts, instead of ``edits``.
            targets: the new target of each prompt (a space is put between prompt and target).
            rephrases: for each prompt, other wordings that should give the new target too.
            subjects: for each prompt, the words in it that name what the fact is about ("France" in "The
                capital of France is"); editors keyed on the subject (``MALMEN(key_tokens="subject")``)
                need them, the others keep them as the records' ``subject``. Each must occur in its prompt.
            sequential: make the edits one after another, each on the model the previous ones left (and
                measure every edit after the last); default: all at once, as one batched edit.
            in_place: write the edits into the editor's base model (the object you passed) instead of a copy;
                :meth:`EditResult.undo` restores it exactly.
            preview_tokens: greedy tokens generated after each prompt before and after the edit (0: none).

        Returns:
            The :class:`EditResult`.

        """
        records = _records(edits, prompts, targets, rephrases, subjects)
        editor, dm = self.editor, self.datamodule
        editor.attach_datamodule(dm)  # FT+KL draws its locality rows from it (once); a no-op for the others
        editor.eval()
        start = time.perf_counter()
        if sequential:
            batches = [move_data_to_device(dm.make_batch([r], train=False), editor.device) for r in records]
            deltas, latencies = editor.pre_edit_deltas(), []
            for batch in batches:
                t0 = time.perf_counter()
                deltas = editor.edit_from(batch["edit"], batch.get("cond"), deltas)
                latencies.append(time.perf_counter() - t0)
            rows = []
            for batch, latency in zip(batches, latencies, strict=True):
                rows += record_rows(batch, editor.evaluate_batch(batch, deltas, latency))
        else:
            batch = dm.make_batch(records, train=False)
            out = editor.evaluate_batch(move_data_to_device(batch, editor.device))
            deltas, rows = editor._last_deltas, record_rows(batch, out)
        latency = time.perf_counter() - start
        if preview_tokens:
            self._previews(records, rows, deltas, preview_tokens)
        return self._result(records, rows, deltas, latency, in_place)

    def _previews(self, records: list[EditRecord], rows: list[dict], deltas: Any, tokens: int) -> None:
        editor = self.editor
        batch = move_data_to_device(self.datamodule.make_batch(records, train=False)["edit"], editor.device)
        pre = editor.greedy_outputs(batch, editor.pre_edit_deltas(), tokens)
        post = editor.greedy_outputs(batch, deltas, tokens)
        for row, before, after in zip(rows, pre, post, strict=True):
            row["pre_output"], row["post_output"] = before, after

    def _result(
        self, records: list[EditRecord], rows: list[dict], deltas: Any, latency: float, in_place: bool
    ) -> EditResult:
        editor = self.editor
        if not editor.edits_weights:
            if in_place:
                raise APIError(
                    f"{type(editor).__name__} does not change weights (its edits are answers kept beside the "
                    "model): in_place=True has nothing to write"
                )
            return EditResult(None, deltas, rows, latency, self.tokenizer, type(editor).__name__)
        model = editor.base if in_place else copy.deepcopy(editor.base)
        originals = _write(model, deltas)
        return EditResult(
            model,
            deltas,
            rows,
            latency,
            self.tokenizer,
            type(editor).__name__,
            originals if in_place else None,
        )


@dataclass
class EditResult:
    """What an edit made and how well it worked.

    Attributes:
        model: the edited model (a copy, or the base model itself after ``in_place=True``); None for the cache
            editor, whose edits are not weight changes.
        deltas: ``{weight name: delta}`` added to the base model's weights (for the cache: its stored edits).
        records: one dict per edit: ``es_edit`` (the target is the greedy output), ``equiv_success`` of
            ``equiv_total`` rephrases, locality columns when records had locality items, ``pre_output`` and
            ``post_output`` previews.
        latency_s: seconds the edits and their measurement took.
        summary: ES, ES on the prompt and on rephrases, drawdowns (``mendlight.reporting.summarise``).

    """

    model: torch.nn.Module | None
    deltas: Any
    records: list[dict]
    latency_s: float
    tokenizer: Any = field(repr=False)
    editor_name: str = ""
    _originals: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    summary: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarise(self.records)

    def undo(self) -> torch.nn.Module | None:
        """Restore an in-place edit exactly (the weights it changed get their original values back).

        A copy's edit left the original model unchanged: nothing to restore. Returns the restored model.
        """
        if self._originals is not None and self.model is not None:
            params = dict(self.model.named_parameters())
            with torch.no_grad():
                for name, value in self._originals.items():
                    params[name].copy_(value)
            self._originals = None
        return self.model

    def save_pretrained(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Save the edited model and its tokenizer as a plain Hugging Face directory (``from_pretrained``).

        Raises:
            APIError: for the cache editor (no edited weights to save).
            FileExistsError: if ``directory`` is not empty and ``overwrite`` is False.

        """
        if self.model is None:
            raise APIError(
                f"{self.editor_name} does not change the model's weights (its edits are answers kept beside "
                "the unedited model), so there is no edited model to save"
            )
        return save_edited(self.model, self.tokenizer, {}, Path(directory).expanduser(), overwrite=overwrite)
