"""The architecture table: which weights an editor edits, keyed by ``config.model_type``.

Editors never branch on a model's class or name; everything model-specific lives here
(docs/design.md §2). A row names the model's layout (causal LM, sequence-to-sequence LM or binary
classifier) and one or more block groups — a block list with the weights inside each block that are edited
by default: the MLP matrices of the last blocks, as in the MEND paper (docs/algorithm.md §4.1).
Encoder-decoder models have two groups (the last 2 encoder and the last 2 decoder blocks). A group may list
alternative weight names (T5 v1.0's ``wi`` and T5 v1.1's gated ``wi_0``); only those present in a block
are edited. Users override the choice with exact names or glob patterns (``edit_params`` in a config); a
pattern that matches nothing is an error listing candidates.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from transformers.pytorch_utils import Conv1D

from mendlight.errors import UserInputError

#: Model layouts: decoder-only LMs, encoder-decoder LMs, binary classifiers (one logit per input).
LAYOUTS: tuple[str, ...] = ("causal", "seq2seq", "classifier")


@dataclass(frozen=True)
class BlockGroup:
    """A block list and the weights edited inside each of its last blocks.

    Attributes:
        blocks: dotted path of the ``ModuleList`` of transformer blocks.
        weights: weight names inside a block, in edit order (this order fixes α and FiLM-mode indices);
            names absent from a block are skipped (alternatives across versions of one architecture).
        n_edit_layers: how many of the last blocks are edited by default.

    """

    blocks: str
    weights: tuple[str, ...]
    n_edit_layers: int = 3


@dataclass(frozen=True)
class ArchSpec:
    """How to find the default edited weights of one architecture family, and its layout.

    Attributes:
        groups: the block groups, in edit order (encoder before decoder).
        kind: ``causal``, ``seq2seq`` or ``classifier``; decides the model class, the batch layout and losses.

    """

    groups: tuple[BlockGroup, ...]
    kind: str = "causal"

    def __post_init__(self) -> None:
        if self.kind not in LAYOUTS:
            raise ValueError(f"kind {self.kind!r} is not one of {LAYOUTS}")

    @property
    def blocks(self) -> str:
        """The block list of the first (for decoder-only models: the only) group."""
        return self.groups[0].blocks


def _mlp(blocks: str, *weights: str, n: int = 3, kind: str = "causal") -> ArchSpec:
    return ArchSpec((BlockGroup(blocks, weights, n),), kind)


_LLAMA_MLP = _mlp("model.layers", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")
_T5_FF = ("DenseReluDense.wi.weight", "DenseReluDense.wi_0.weight", "DenseReluDense.wo.weight")
_BART_FF = ("fc1.weight", "fc2.weight")

#: ``config.model_type`` → layout and default edited weights (docs/algorithm.md §4.1). Llama-family models
#: edit their gate/up/down projections; T5 edits ``wi``+``wo`` (v1.0) or the gated ``wi_0``+``wo`` (v1.1;
#: ``wi_1`` is not edited) of the last 2 encoder and decoder blocks; BERT is a binary classifier (one logit
#: from a linear head on the pooled output) and edits ``intermediate.dense`` and ``output.dense`` of its
#: last 3 layers.
ARCH_TABLE: dict[str, ArchSpec] = {
    "llama": _LLAMA_MLP,
    "qwen2": _LLAMA_MLP,
    "mistral": _LLAMA_MLP,
    "gemma": _LLAMA_MLP,
    "gemma2": _LLAMA_MLP,
    "gemma3_text": _LLAMA_MLP,
    "gpt2": _mlp("transformer.h", "mlp.c_fc.weight", "mlp.c_proj.weight"),
    "gpt_neo": _mlp("transformer.h", "mlp.c_fc.weight", "mlp.c_proj.weight"),
    "gptj": _mlp("transformer.h", "mlp.fc_in.weight", "mlp.fc_out.weight"),
    "t5": ArchSpec(
        (
            BlockGroup("encoder.block", tuple(f"layer.1.{w}" for w in _T5_FF), 2),
            BlockGroup("decoder.block", tuple(f"layer.2.{w}" for w in _T5_FF), 2),
        ),
        "seq2seq",
    ),
    "bart": ArchSpec(
        (BlockGroup("model.encoder.layers", _BART_FF, 2), BlockGroup("model.decoder.layers", _BART_FF, 2)),
        "seq2seq",
    ),
    "bert": _mlp("bert.encoder.layer", "intermediate.dense.weight", "output.dense.weight", kind="classifier"),
}


class EditParamError(UserInputError, ValueError):
    """The edited-weight selection is invalid; the message lists the candidates."""


def _model_type(model_or_config) -> str | None:
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "model_type", None)


def model_kind(config) -> str:
    """The layout of a model from its config (or the model): ``causal``, ``seq2seq`` or ``classifier``.

    The architecture table decides for the types it lists; otherwise an encoder-decoder config is ``seq2seq``,
    a config whose architectures are sequence classifiers is ``classifier``, and the rest are causal LMs.
    """
    config = getattr(config, "config", config)
    spec = ARCH_TABLE.get(_model_type(config))
    if spec is not None:
        return spec.kind
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if is_classifier_config(config):
        return "classifier"
    return "causal"


def is_classifier_config(config) -> bool:
    """Whether a config's ``architectures`` name a sequence-classification head (a trained classifier)."""
    architectures = getattr(config, "architectures", None) or ()
    return any(str(a).endswith("ForSequenceClassification") for a in architectures)


def arch_spec(model: torch.nn.Module) -> ArchSpec:
    """Return the table row for ``model.config.model_type``, or raise naming the supported types."""
    model_type = _model_type(model)
    if model_type not in ARCH_TABLE:
        raise EditParamError(
            f"model_type {model_type!r} has no row in the architecture table "
            f"(supported: {', '.join(sorted(ARCH_TABLE))}); pass edit_params (names or glob patterns) "
            "to choose the edited weights explicitly"
        )
    return ARCH_TABLE[model_type]


def default_edit_params(model: torch.nn.Module) -> list[str]:
    """The default edited weights of ``model``: each group's weights in its last ``n_edit_layers`` blocks."""
    params = dict(model.named_parameters())
    names: list[str] = []
    for group in arch_spec(model).groups:
        n_blocks = len(model.get_submodule(group.blocks))
        for i in range(max(0, n_blocks - group.n_edit_layers), n_blocks):
            present = [n for n in (f"{group.blocks}.{i}.{w}" for w in group.weights) if n in params]
            if not present:
                raise EditParamError(
                    f"block {group.blocks}.{i} has none of the table's weights {list(group.weights)}; "
                    "pass edit_params (names or glob patterns) to choose the edited weights"
                )
            names += present
    return names


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
