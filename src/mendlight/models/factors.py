"""Capture MEND's rank-1 gradient factors of each edited weight during one forward/backward pass.

For a weight W of a linear layer with input u and output z = W u, the gradient of a loss L is
``∇W = Σ_rows δ uᵀ`` with δ = ∂L/∂z. :class:`FactorCapture` records u with a forward hook on the layer and δ
with a tensor hook registered on the layer's output (not a module full-backward hook, which breaks with
in-place ops: pytorch#61519). :meth:`FactorCapture.backward` differentiates only with respect to the captured
outputs, so no weight gradient is ever formed and backpropagation stops at the lowest edited layer.
"""

from __future__ import annotations

from collections import defaultdict

import torch


class FactorCapture:
    """Context manager recording each edited layer's inputs u and output gradients δ.

    Args:
        model: the model whose layers own the weights.
        names: edited weight names (``...weight``); their parent modules are hooked.

    Use::

        with FactorCapture(model, names) as cap:
            loss = loss_fn(model_or_functional_call(...))
            cap.backward(loss)
        u, delta = cap.factors(name)   # [rows, in], [rows, out]

    """

    def __init__(self, model: torch.nn.Module, names: list[str]):
        self.model = model
        self.names = list(names)
        self._inputs: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._outputs: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._grads: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._handles: list = []

    def __enter__(self) -> FactorCapture:
        for name in self.names:
            module = self.model.get_submodule(name.rsplit(".", 1)[0])
            self._handles.append(module.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, name: str):
        grads = self._grads[name]  # the gradient hook appends here: its closure must not hold the capture

        def hook(module, args, output):
            self._inputs[name].append(args[0].detach())
            if output.requires_grad:
                self._outputs[name].append(output)
                output.register_hook(lambda grad: grads.append(grad.detach()))

        return hook

    def clear(self) -> None:
        """Drop the captured inputs, outputs and gradients now, before the capture itself is dropped.

        A capture holds no reference cycle (its outputs' gradient hooks append to a list, not to the capture),
        so its tensors are freed as soon as it is no longer referenced; callers that capture many chunks in a
        row (MALMEN) clear each one once its factors are read, while the capture object is still in scope.
        """
        for held in (self._inputs, self._outputs, self._grads):
            held.clear()

    def backward(self, loss: torch.Tensor) -> None:
        """Run the backward pass that fills δ for every captured output (no weight gradients are formed)."""
        outputs = [out for name in self.names for out in self._outputs[name]]
        if not outputs:
            raise RuntimeError(
                "no edited layer produced an output that requires grad; make the edited weights "
                "differentiable leaves (see MEND.edit) before the forward pass"
            )
        torch.autograd.grad(loss, outputs, allow_unused=True)

    def factors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u, δ)`` of one weight, flattened to rows: ``[N, in]`` and ``[N, out]``.

        Rows from several calls of the same layer are concatenated. A layer whose output did not influence
        the loss gets δ = 0 rows.
        """
        inputs = self._inputs.get(name)
        if not inputs:
            raise KeyError(f"no forward pass through {name!r} was captured")
        us = [u.reshape(-1, u.shape[-1]) for u in inputs]
        grads = self._grads.get(name, [])
        outs = self._outputs.get(name, [])
        if not grads and outs:  # the loss did not depend on this layer's output: δ is exactly zero
            return torch.cat(us), torch.cat(
                [torch.zeros_like(o.detach()).reshape(-1, o.shape[-1]) for o in outs]
            )
        if len(grads) != len(outs):
            raise RuntimeError(
                f"backward() captured {len(grads)} gradients for {len(outs)} outputs of {name!r}"
            )
        # Tensor hooks fire in reverse call order; restore forward order before pairing with inputs.
        deltas = [g.reshape(-1, g.shape[-1]) for g in reversed(grads)]
        return torch.cat(us), torch.cat(deltas)
