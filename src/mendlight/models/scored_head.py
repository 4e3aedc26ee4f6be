"""Run the output head only where a logit is scored, and hand back only those logits.

The head of a language model (SmolLM2: 576 → 49,152) is the largest single matrix product of a forward pass,
and a training step scores few of the positions it runs on: the target tokens of the edit and rephrase rows,
and the positions of the locality KL; padding is never scored. Inside :func:`scored_positions_only` the
model's output embeddings see only the hidden states of the positions in ``mask``, packed in row-major order
into one ``[N, hidden]`` matrix, and the model returns their logits as ``[1, N, vocab]`` (take ``[0]``): a
forward pass costs ``N`` head rows instead of ``rows × T``, and no full-size logits tensor is ever made.
Differentiable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def has_token_head(model: torch.nn.Module) -> bool:
    """Whether ``model`` has output embeddings (a causal or encoder-decoder LM, not a classifier)."""
    return hasattr(model, "get_output_embeddings") and model.get_output_embeddings() is not None


@contextmanager
def scored_positions_only(model: torch.nn.Module, mask: torch.Tensor) -> Iterator[None]:
    """Within the block, a forward of ``model`` returns the logits ``[1, N, vocab]`` at ``mask`` only.

    Args:
        model: a causal or encoder-decoder LM (:func:`has_token_head`).
        mask: ``[rows, T]``: the output positions whose logits are wanted (decoder positions for an
            encoder-decoder model); forward passes inside the block must be over exactly ``rows × T``.

    """
    head = model.get_output_embeddings()
    keep = mask.bool()

    def pack(module, args):
        hidden = args[0]
        if hidden.shape[:2] != keep.shape:
            raise RuntimeError(
                f"scored positions {tuple(keep.shape)} do not match a forward over {tuple(hidden.shape[:2])}"
            )
        return (hidden[keep].unsqueeze(0), *args[1:])

    handle = head.register_forward_pre_hook(pack)
    try:
        yield
    finally:
        handle.remove()
