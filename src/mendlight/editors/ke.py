"""KE: KnowledgeEditor (De Cao et al., 2021) as the MEND paper runs it (docs/algorithm.md §3.4).

A hyper-network reads the *condition* of an edit — ``"<old> >> <new> || <prompt>"``, or the edit sequence for
generation — and turns the fine-tuning gradient ``∇W`` of each edited weight into an update:

* **conditioner**: token embeddings initialised from the base model's input embeddings (a trainable copy) →
  a 1-layer bidirectional LSTM (final states of both directions, padding masked) → ``Linear(2h → c)`` + tanh,
  giving a condition vector ``c`` (``condition_dim``, 768 in the paper);
* **per-weight head** for ``W ∈ R^{a×b}`` (storage layout): ``weight_norm(Linear(c → h))`` → tanh →
  ``weight_norm(Linear(h → 2(a+b)+1))``, split into ``col_a (b), row_a (a), col_b (b), row_b (a), norm (1)``;
  ``A = softmax(row_a) col_aᵀ`` and ``B = softmax(row_b) col_bᵀ`` are rank-1 ``a×b`` matrices, and the
  update is ``Δ = max_scale · σ(norm) · (∇W ⊙ A + B)``, applied as ``W + Δ``.

The gradient is first order (a constant for the hyper-network). The conditioner reads one edit at a time,
so KE makes single edits only: a batch of several edits is a clear error.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from mendlight.data.batch import CondRows, TokenRows
from mendlight.editors.base import Editor
from mendlight.errors import ConfigError, check_at_least
from mendlight.losses import edit_nll
from mendlight.models.functional import ParamDeltas


class LSTMConditioner(nn.Module):
    """Condition text → vector: embeddings, a bidirectional LSTM's final states, a tanh projection.

    Args:
        embeddings: the initial token embedding matrix ``[vocab, E]`` (copied; trained).
        hidden_dim: LSTM hidden size per direction (paper: 512).
        condition_dim: size of the condition vector (paper: 768).
        padding_idx: the pad token id.

    """

    def __init__(
        self, embeddings: torch.Tensor, hidden_dim: int, condition_dim: int, padding_idx: int
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(embeddings.detach().float().clone(), freeze=False)
        self.embedding.padding_idx = padding_idx
        self.lstm = nn.LSTM(embeddings.shape[1], hidden_dim, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden_dim, condition_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[k, T]`` condition tokens → ``[k, condition_dim]``."""
        lengths = attention_mask.sum(-1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embedding(input_ids), lengths, batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.lstm(packed)
        return torch.tanh(self.project(torch.cat([h[0], h[1]], dim=-1)))


class ConditionedParameter(nn.Module):
    """The per-weight head: condition vector and gradient → the masked rank-1 transform ``Δ`` of one weight.

    Args:
        shape: the weight's storage shape ``(a, b)``.
        condition_dim: size of the condition vector.
        hidden_dim: the head's hidden size (paper: 512).
        max_scale: the update's largest scale (paper: 1).

    """

    def __init__(self, shape: tuple[int, int], condition_dim: int, hidden_dim: int, max_scale: float) -> None:
        super().__init__()
        self.shape = tuple(shape)
        a, b = self.shape
        self.net = nn.Sequential(
            weight_norm(nn.Linear(condition_dim, hidden_dim)),
            nn.Tanh(),
            weight_norm(nn.Linear(hidden_dim, 2 * (a + b) + 1)),
        )
        self.max_scale = max_scale

    def forward(self, condition: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """``[condition_dim]`` and ``∇W [a, b]`` → ``Δ [a, b]``."""
        a, b = self.shape
        col_a, row_a, col_b, row_b, norm = torch.split(self.net(condition), [b, a, b, a, 1], dim=-1)
        mask = torch.softmax(row_a, -1).unsqueeze(-1) * col_a.unsqueeze(-2)
        shift = torch.softmax(row_b, -1).unsqueeze(-1) * col_b.unsqueeze(-2)
        return self.max_scale * torch.sigmoid(norm) * (grad * mask + shift)


class KE(Editor):
    """The KnowledgeEditor baseline: a conditioned hyper-network that reshapes the edit gradient.

    Args:
        hidden_dim: LSTM hidden size per direction and the heads' hidden size (paper: 512).
        condition_dim: size of the condition vector (paper: 768).
        max_scale: the largest scale of an update (paper: 1).
        **kwargs: base-model, loss and optimizer options of :class:`~mendlight.editors.base.Editor`
            (the paper's KE optimizer: Adam at 1e-5).

    """

    def __init__(
        self, hidden_dim: int = 512, condition_dim: int = 768, max_scale: float = 1.0, **kwargs
    ) -> None:
        check_at_least("KE", "hidden_dim", hidden_dim, 1)
        check_at_least("KE", "condition_dim", condition_dim, 1)
        if not max_scale > 0:
            raise ConfigError(f"KE: max_scale must be positive, got {max_scale}")
        super().__init__(**kwargs)
        pad = self.tokenizer.pad_token_id
        self.conditioner = LSTMConditioner(
            self.base.get_input_embeddings().weight, hidden_dim, condition_dim, 0 if pad is None else int(pad)
        )
        self.heads = nn.ModuleDict(
            {
                n.replace(".", "__"): ConditionedParameter(
                    tuple(self.base.get_parameter(n).shape), condition_dim, hidden_dim, max_scale
                )
                for n in self.edit_names
            }
        )

    def attach_datamodule(self, datamodule) -> None:
        """Refuse simultaneous edits before any batch is drawn (KE edits one fact at a time)."""
        hparams = getattr(datamodule, "hparams", None) or {}
        for name in ("n_edits", "eval_n_edits"):
            if (hparams.get(name) or 1) > 1:
                raise ConfigError(
                    f"KE edits one fact at a time (its conditioner reads one condition), but "
                    f"--data.init_args.{name} is {hparams.get(name)}; set it to 1"
                )

    def edit(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """The gradient of the edit NLL w.r.t. each edited weight, transformed under the edit's condition."""
        k = int(rows["input_ids"].shape[0])
        if k != 1:
            raise ConfigError(
                f"KE edits one fact at a time (its conditioner reads one condition), but got {k} edits; "
                "set --data.init_args.n_edits and --data.init_args.eval_n_edits to 1"
            )
        if cond is None:
            raise ValueError("KE needs the edit's condition text: the batch's 'cond' group")
        if hidden is None:
            hidden = self.bottom(rows)
        leaves = {n: self.base.get_parameter(n).detach().requires_grad_(True) for n in self.edit_names}
        with torch.enable_grad():
            loss = edit_nll(self.forward_params(rows, leaves, hidden), rows["labels"])
            grads = torch.autograd.grad(loss, list(leaves.values()))
            condition = self.conditioner(cond["input_ids"], cond["attention_mask"])[0]
            return {
                n: self.heads[n.replace(".", "__")](condition, g.float())
                for n, g in zip(self.edit_names, grads, strict=True)
            }
