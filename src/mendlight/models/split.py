"""Run a model in two parts around its lowest edited block: the frozen bottom once, the top many times.

Editing changes only the weights of the last few blocks, so everything below the lowest edited block —
embeddings and most of the network — computes exactly the same activations before and after an edit.
:class:`BlockSplit` runs that bottom part once (no grad) and then evaluates only the top blocks and the head
for the pre-edit, edit and post-edit passes. For SmolLM2 (edits in blocks 27–29 of 30) the top part is a
small fraction of a full forward.

How, without model-specific code: the bottom pass stops at a forward pre-hook on the first top block and
returns its input hidden states; the top pass temporarily shortens the block ``ModuleList`` to the top blocks
and injects the cached hidden states with a pre-hook on the first of them (parameter names are renamed
accordingly for ``functional_call``). Tests check that the logits equal a full forward for every architecture
in the table.

Under autocast (bf16-mixed) both parts use copies of the frozen linear weights in the autocast dtype made
once (:class:`~mendlight.models.autocast_weights.FrozenLinearCasts`), not cast anew by every pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch.func import functional_call

from mendlight.models.autocast_weights import FrozenLinearCasts


class _StopForward(Exception):
    def __init__(self, hidden: torch.Tensor):
        self.hidden = hidden


def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]


class BlockSplit:
    """Split ``model`` before block ``first`` of the block list at ``blocks_path``.

    Args:
        model: the base model.
        blocks_path: dotted path of the transformer blocks' ``ModuleList`` (from the architecture table).
        first: index of the first block of the top part (the lowest edited block).

    """

    def __init__(self, model: torch.nn.Module, blocks_path: str, first: int) -> None:
        self.model = model
        self.blocks_path = blocks_path
        parent, _, attr = blocks_path.rpartition(".")
        self._parent = model.get_submodule(parent) if parent else model
        self._attr = attr
        self.blocks = getattr(self._parent, attr)
        self.first = first
        self._rename = re.compile(rf"^{re.escape(blocks_path)}\.(\d+)\.")
        self.casts = FrozenLinearCasts(model)
        below = (self._rename.match(n) for n in self.casts.weights)  # the bottom part's own weights
        self._below = {m.string for m in below if m is not None and int(m.group(1)) < first}

    def _cast_params(self, device: torch.device, bottom: bool) -> dict[str, torch.Tensor]:
        """Cached autocast copies of the frozen linear weights the bottom (or top) part runs."""
        return {n: w for n, w in self.casts.params(device).items() if (n in self._below) == bottom}

    @torch.no_grad()
    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering block ``first`` (computed without gradients)."""

        def stop(module, args, kwargs):
            raise _StopForward(_hidden_arg(args, kwargs))

        handle = self.blocks[self.first].register_forward_pre_hook(stop, with_kwargs=True)
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
        casts = self._cast_params(input_ids.device, bottom=True)
        try:
            if casts:
                functional_call(self.model, casts, args=(), kwargs=kwargs, strict=False)
            else:
                self.model(**kwargs)
        except _StopForward as caught:
            return caught.hidden.detach()
        finally:
            handle.remove()
        raise RuntimeError(f"block {self.first} of {self.blocks_path} was never called")

    def _renamed(self, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for name, value in params.items():
            match = self._rename.match(name)
            if match is None:
                out[name] = value
                continue
            index = int(match.group(1))
            if index < self.first:
                raise ValueError(f"{name} lies below the split block {self.first}")
            out[f"{self.blocks_path}.{index - self.first}.{name[match.end() :]}"] = value
        return out

    @contextmanager
    def _top_only(self, hidden: torch.Tensor) -> Iterator[None]:
        def inject(module, args, kwargs):
            if "hidden_states" in kwargs:
                kwargs["hidden_states"] = hidden
                return args, kwargs
            return (hidden, *args[1:]), kwargs

        top = torch.nn.ModuleList(list(self.blocks)[self.first :])
        handle = top[0].register_forward_pre_hook(inject, with_kwargs=True)
        setattr(self._parent, self._attr, top)
        try:
            yield
        finally:
            setattr(self._parent, self._attr, self.blocks)
            handle.remove()

    def top(
        self,
        hidden: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits from cached ``hidden`` through the top blocks and the head, with ``params`` substituted.

        Args:
            hidden: output of :meth:`bottom` for the same rows.
            input_ids: the rows' token ids (the embeddings are recomputed and discarded; masks and positions
                are derived from them as in a full forward).
            attention_mask: the rows' attention mask.
            params: full parameter names → tensors to use instead of the model's (e.g. ``W + Δ`` or leaves).

        """
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
        substitute = {**self._cast_params(hidden.device, bottom=False), **(params or {})}
        with self._top_only(hidden):
            if not substitute:
                return self.model(**kwargs).logits
            # untied: a cached copy of a head tied to the input embeddings must not replace the embeddings
            # too (their dtype sets that of the rotary tables); the edited weights are never tied
            return functional_call(
                self.model, self._renamed(substitute), args=(), kwargs=kwargs, strict=False, tie_weights=False
            ).logits
