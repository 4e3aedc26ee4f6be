"""Edit a model without mutating it: parameter deltas applied through ``torch.func.functional_call``.

An edit is a :data:`ParamDeltas` mapping (weight name → additive delta). :func:`model_logits` evaluates any
model layout with some parameters substituted, and :func:`forward_with` evaluates it at ``θ + Δ``
functionally, so gradients flow into whatever produced Δ (an editor network, α) but never into the base
weights, and the base stays bit-for-bit unchanged. :func:`materialised` writes an edit into the
weights temporarily (restoring the exact original tensors afterwards) for saving or generation.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.func import functional_call

ParamDeltas = dict[str, torch.Tensor]


def edited_params(model: torch.nn.Module, deltas: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{name: W + Δ}`` for every edited weight, Δ cast to the weight's dtype."""
    out = {}
    for name, delta in deltas.items():
        weight = model.get_parameter(name)
        out[name] = weight + delta.to(weight.dtype)
    return out


def detached(deltas: Mapping[str, torch.Tensor]) -> ParamDeltas:
    """The deltas without autograd history; an edit type with its own ``detached()`` keeps its type."""
    own = getattr(deltas, "detached", None)
    if callable(own):
        return own()
    return {name: delta.detach() for name, delta in deltas.items()}


def _accepts_use_cache(model: torch.nn.Module) -> bool:
    return "use_cache" in inspect.signature(type(model).forward).parameters


def model_logits(
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits of ``model`` on ``inputs`` with ``params`` substituted (``W + Δ`` or leaves), functionally.

    Args:
        model: a causal LM, an encoder-decoder LM or a sequence classifier.
        inputs: the forward's keyword arguments (``input_ids``, ``attention_mask``, and for encoder-decoder
            models ``decoder_input_ids``/``decoder_attention_mask``).
        params: full parameter names → tensors used instead of the model's; None runs the model as it is.

    Returns:
        Token logits ``[rows, T, V]`` (decoder positions for encoder-decoder models), or one logit per row,
        ``[rows]``, for a classifier: its single output, or ``logit(true) − logit(false)`` for a two-class
        head (the log-odds, so ``> 0`` means class 1 in both cases).

    """
    kwargs = dict(inputs)
    if _accepts_use_cache(model):
        kwargs["use_cache"] = False
    if params:
        out = functional_call(model, dict(params), args=(), kwargs=kwargs, strict=False)
    else:
        out = model(**kwargs)
    logits = out.logits
    if logits.ndim == 2:  # a sequence classifier
        if logits.shape[-1] == 1:
            return logits.squeeze(-1)
        if logits.shape[-1] == 2:
            return logits[:, 1] - logits[:, 0]
        raise ValueError(f"a classifier with {logits.shape[-1]} classes cannot be edited; use a binary head")
    return logits


def forward_with(
    model: torch.nn.Module,
    deltas: Mapping[str, torch.Tensor] | None,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    **inputs: torch.Tensor,
) -> torch.Tensor:
    """Logits of ``model`` at ``θ + Δ`` (or at θ when ``deltas`` is empty) without touching its parameters.

    Extra keyword ``inputs`` (decoder ids and mask) are passed to the model; see :func:`model_logits`.
    """
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, **inputs}
    return model_logits(model, kwargs, edited_params(model, deltas) if deltas else None)


@contextmanager
def materialised(model: torch.nn.Module, deltas: Mapping[str, torch.Tensor]) -> Iterator[torch.nn.Module]:
    """Write ``θ + Δ`` into the edited weights for the duration of the block, then restore the originals.

    The original tensors are copied before and copied back after, so the base is bit-for-bit unchanged
    afterwards (no ``W + Δ − Δ`` rounding).
    """
    saved = {}
    with torch.no_grad():
        for name, delta in deltas.items():
            weight = model.get_parameter(name)
            saved[name] = weight.detach().clone()
            weight.add_(delta.detach().to(weight.dtype))
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, original in saved.items():
                model.get_parameter(name).copy_(original)


#: Weight files of a saved model: with ``overwrite`` the ones the new save does not write are removed, so
#: ``from_pretrained`` never picks up stale shards (what ``save_pretrained`` does in a directory it reuses).
_WEIGHT_FILES = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin*")


def _staging_dir(out: Path) -> Path:
    """A new temporary directory on the same file system as ``out``: its sibling, or inside it.

    A sibling lets a new directory be moved into place in one rename; inside ``out`` is the fallback for an
    existing ``out`` whose parent is not writable.
    """
    parent = out.parent
    if out.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        parent = out
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.saving-", dir=parent))


def _move_into_place(staged: Path, out: Path, overwrite: bool) -> None:
    """Move a complete saved model from ``staged`` to ``out``: one rename when ``out`` is new or empty."""
    existing = [p for p in out.iterdir() if p != staged] if out.is_dir() else None
    if existing and not overwrite:
        raise FileExistsError(f"{out} is not empty (pass overwrite=True to replace its files)")
    if staged.parent == out.parent:
        if existing is not None and not existing:
            out.rmdir()
        if not out.exists():
            os.replace(staged, out)  # atomic: out appears complete or not at all
            return
    new = {p.name for p in staged.iterdir()}
    for pattern in _WEIGHT_FILES:
        for stale in out.glob(pattern):
            if stale.name not in new and stale.is_file():
                stale.unlink()
    weights = [p for p in staged.iterdir() if any(p.match(w) for w in _WEIGHT_FILES)]
    others = [p for p in staged.iterdir() if p not in weights]
    for item in others + weights:  # each file is replaced atomically, the weights last
        target = out / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)


def save_edited(
    model, tokenizer, deltas: Mapping[str, torch.Tensor], out_dir: str | Path, overwrite: bool = False
) -> Path:
    """Save ``θ + Δ`` as a plain Hugging Face model directory (loadable with ``from_pretrained``).

    The model and tokenizer are written into a temporary directory next to ``out_dir`` first and moved into
    place only once complete, so a failure never leaves a half-written model in ``out_dir``: a new or empty
    ``out_dir`` appears in one rename, and with ``overwrite`` the files of a non-empty one are replaced one
    by one (its other files stay; stale weight files are removed).

    Raises:
        NotADirectoryError: if ``out_dir`` is an existing file.
        FileExistsError: if ``out_dir`` is a non-empty directory and ``overwrite`` is False.

    """
    out = Path(out_dir)
    target = out.expanduser().resolve()  # a symlinked directory is filled where it points
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty (pass overwrite=True to replace its files)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = _staging_dir(target)
    try:
        with materialised(model, deltas):
            model.save_pretrained(staged)
        if tokenizer is not None:
            tokenizer.save_pretrained(staged)
        _move_into_place(staged, target, overwrite)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    return out


@torch.no_grad()
def greedy_continuations(
    model: torch.nn.Module,
    deltas: Mapping[str, torch.Tensor] | None,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int | None = None,
) -> list[list[int]]:
    """Greedy continuation ids of each right-padded row at ``θ + Δ``, with a KV cache, all rows at once.

    A decoder-only model continues the row itself; an encoder-decoder model reads the row with its encoder
    and decodes from ``config.decoder_start_token_id`` (the start token is not returned). The edit is written
    into the weights for the duration (:func:`materialised`, which restores the exact original tensors) and
    the rows are decoded together by one ``generate()`` with its KV cache: one pass over the prompts, then
    one token at a time, instead of a full forward per new token. A decoder-only model's rows are left-padded
    for it (``generate`` appends at the right; the attention mask hides the padding and the position ids
    follow it), an encoder-decoder model's stay right-padded. Decoding of a row stops at ``eos_token_id``
    (not returned).
    """
    from transformers import GenerationConfig

    config = getattr(model, "config", None)
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    pad = getattr(config, "pad_token_id", None)
    settings = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos_token_id,
        pad_token_id=pad if pad is not None else (eos_token_id if eos_token_id is not None else 0),
        decoder_start_token_id=getattr(config, "decoder_start_token_id", None) if seq2seq else None,
    )
    if not input_ids.shape[0]:
        return []
    ids, mask = (input_ids, attention_mask) if seq2seq else _left_padded(input_ids, attention_mask, settings)
    with materialised(model, deltas or {}):
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=settings)
    new = out[:, 1:] if seq2seq else out[:, ids.shape[1] :]
    rows = []
    for row in new.tolist():
        if eos_token_id is not None and eos_token_id in row:
            row = row[: row.index(eos_token_id)]
        rows.append(row)
    return rows


def _left_padded(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, settings
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows (any padding, in fact: the mask decides) moved to the right end of the batch."""
    keep = attention_mask.bool()
    width = int(keep.sum(-1).max()) if keep.numel() else 0
    ids = input_ids.new_full((input_ids.shape[0], width), int(settings.pad_token_id))
    mask = attention_mask.new_zeros((input_ids.shape[0], width))
    for r in range(input_ids.shape[0]):
        src = input_ids[r][keep[r]]
        if src.numel():
            ids[r, width - src.numel() :] = src
            mask[r, width - src.numel() :] = 1
    return ids, mask


def state_fingerprint(module: torch.nn.Module, names: list[str] | None = None) -> str:
    """SHA-256 over the bytes of a module's parameters and buffers (or ``names``), for identity checks."""
    digest = hashlib.sha256()
    state = module.state_dict(keep_vars=False)
    for key in sorted(names if names is not None else state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
