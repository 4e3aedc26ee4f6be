"""Low-precision copies of the frozen linear weights, made once, for passes run under autocast.

Under ``torch.autocast`` (``--trainer.precision bf16-mixed``) every ``nn.Linear`` casts its float32 weight to
the autocast dtype on every call. Autocast keeps a cast only for weights that require grad, so the frozen base
model — every weight but the few an editor changes — is cast anew by every pass; in a profile of a bf16 MEND
training step on SmolLM2 (2-core CPU, taken while another job shared it) those casts (``aten::copy_``) were
about an eighth of the CPU time. :class:`FrozenLinearCasts` makes each copy once and hands it to
``torch.func.functional_call`` in place of the weight. Autocast's own cast of a float32 weight rounds it the
same way, so logits and gradients are bit-identical to plain autocast (tested); only the time changes.

The copies take half the float32 weights' memory (about 270 MB for SmolLM2-135M, whose output head is tied
to its input embeddings). They are made by the first pass under autocast and kept until :meth:`clear`; outside
autocast none are used. A copy is remade when its weight changes (its in-place version counter, data pointer
or device), so an in-place edit of the base model is never served a stale copy. Weights that require grad are
never copied: autocast caches those itself within a step, and they are the ones training changes.
"""

from __future__ import annotations

import torch


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype in force for ``device``'s type, or None when autocast is off there."""
    kind = device.type
    if kind not in ("cpu", "cuda") or not torch.is_autocast_enabled(kind):
        return None
    dtype = torch.get_autocast_dtype(kind)
    return dtype if dtype in (torch.bfloat16, torch.float16) else None


class FrozenLinearCasts:
    """Cached autocast-dtype copies of the weights of a model's frozen ``nn.Linear`` modules.

    Args:
        model: the model whose linear weights are copied (every ``nn.Linear`` in it).

    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.weights = {
            f"{name}.weight": module.weight
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
        }
        self._copies: dict[str, tuple[tuple, torch.Tensor]] = {}

    def params(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Full parameter name → cached copy in the current autocast dtype; empty when autocast is off."""
        dtype = autocast_dtype(device)
        if dtype is None:
            return {}
        out = {}
        for name, weight in self.weights.items():
            if weight.requires_grad or not weight.is_floating_point() or weight.device.type != device.type:
                continue
            key = (dtype, weight._version, weight.data_ptr(), weight.device)
            cached = self._copies.get(name)
            if cached is None or cached[0] != key:
                with torch.no_grad():
                    cached = (key, weight.detach().to(dtype))
                self._copies[name] = cached
            out[name] = cached[1]
        return out

    def clear(self) -> None:
        """Drop every cached copy (they are remade on the next pass under autocast)."""
        self._copies.clear()
