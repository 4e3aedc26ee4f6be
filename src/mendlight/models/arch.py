"""The architecture table: which weights an editor edits, keyed by ``config.model_type``.

Editors never branch on a model's class or name; everything model-specific lives here (DESIGN.md §2). A row
names the block list and the weights inside each block that are edited by default — the MLP matrices of the
last ``n_edit_layers`` blocks, as in the MEND paper (spec §4.1). Users override the choice with exact names or
glob patterns (``edit_params`` in a config); a pattern that matches nothing is an error listing candidates.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from transformers.pytorch_utils import Conv1D


@dataclass(frozen=True)
class ArchSpec:
    """How to find the default edited weights of one architecture family.

    Attributes:
        blocks: dotted path of the ``ModuleList`` of transformer blocks.
        weights: weight names inside a block, in edit order (this order fixes α and FiLM-mode indices).
        n_edit_layers: how many of the last blocks are edited by default.

    """

    blocks: str
    weights: tuple[str, ...]
    n_edit_layers: int = 3


_LLAMA_MLP = ArchSpec("model.layers", ("mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"))

#: ``config.model_type`` → default edited weights. Llama-family models edit gate/up/down projections.
ARCH_TABLE: dict[str, ArchSpec] = {
    "llama": _LLAMA_MLP,
    "qwen2": _LLAMA_MLP,
    "mistral": _LLAMA_MLP,
    "gemma": _LLAMA_MLP,
    "gemma2": _LLAMA_MLP,
    "gemma3_text": _LLAMA_MLP,
    "gpt2": ArchSpec("transformer.h", ("mlp.c_fc.weight", "mlp.c_proj.weight")),
    "gpt_neo": ArchSpec("transformer.h", ("mlp.c_fc.weight", "mlp.c_proj.weight")),
    "gptj": ArchSpec("transformer.h", ("mlp.fc_in.weight", "mlp.fc_out.weight")),
}


class EditParamError(ValueError):
    """The edited-weight selection is invalid; the message lists the candidates."""


def arch_spec(model: torch.nn.Module) -> ArchSpec:
    """Return the table row for ``model.config.model_type``, or raise naming the supported types."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCH_TABLE:
        raise EditParamError(
            f"model_type {model_type!r} has no row in the architecture table "
            f"(supported: {', '.join(sorted(ARCH_TABLE))}); pass edit_params (names or glob patterns) "
            "to choose the edited weights explicitly"
        )
    return ARCH_TABLE[model_type]


def default_edit_params(model: torch.nn.Module) -> list[str]:
    """The default edited weights of ``model``: the table's weights in its last ``n_edit_layers`` blocks."""
    spec = arch_spec(model)
    blocks = model.get_submodule(spec.blocks)
    n_blocks = len(blocks)
    first = max(0, n_blocks - spec.n_edit_layers)
    return [f"{spec.blocks}.{i}.{w}" for i in range(first, n_blocks) for w in spec.weights]


def _matrix_names(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.ndim == 2]


def resolve_edit_params(model: torch.nn.Module, edit_params: list[str] | None = None) -> list[str]:
    """Resolve the edited weight names: the architecture default, or the given names / glob patterns.

    Args:
        model: the base model.
        edit_params: exact parameter names or ``fnmatch`` patterns
            (e.g. ``"model.layers.2[89].mlp.*.weight"``);
            ``None`` or empty uses the architecture table. Order is kept; duplicates are dropped.

    Returns:
        Parameter names of 2-D weights, in edit order.

    Raises:
        EditParamError: a pattern matches no weight matrix (the message lists candidates).

    """
    names = default_edit_params(model) if not edit_params else None
    if names is None:
        candidates = _matrix_names(model)
        names = []
        for pattern in edit_params or []:
            matched = [n for n in candidates if n == pattern or fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                last_block = [n for n in candidates if ".mlp." in n or ".attn" in n or "_proj" in n][-12:]
                raise EditParamError(
                    f"edit_params entry {pattern!r} matches no weight matrix of this model. Candidates "
                    f"include:\n  "
                    + "\n  ".join(last_block or candidates[-12:])
                    + f"\n({len(candidates)} weight matrices in all; globs like '*.mlp.*.weight' work)"
                )
            names.extend(n for n in matched if n not in names)
    for name in names:
        param = model.get_parameter(name)
        if param.ndim != 2:
            raise EditParamError(f"edited parameter {name!r} has shape {tuple(param.shape)}; only matrices")
    return names


def is_conv1d(model: torch.nn.Module, name: str) -> bool:
    """Whether the weight ``name`` belongs to a HF GPT-2 style ``Conv1D`` (stored ``[in, out]``)."""
    return isinstance(model.get_submodule(name.rsplit(".", 1)[0]), Conv1D)


def weight_io_shape(model: torch.nn.Module, name: str) -> tuple[int, int]:
    """``(in_features, out_features)`` of an edited weight, whatever its storage layout."""
    rows, cols = model.get_parameter(name).shape
    return (rows, cols) if is_conv1d(model, name) else (cols, rows)
