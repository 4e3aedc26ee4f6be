"""The caching editor of the MEND paper's Appendix G: remember each edit, answer it when an input is close.

An edit stores the *key* of its input x_e — the mean over the input's tokens of the base model's final hidden
state — and its target y_e. At test time an input x whose key z satisfies ``‖z − z_e‖₂ < ε`` for some stored
edit is answered with that edit's y_e (the nearest one if several match); every other input gets the
unedited model's output. Nothing is trained and no weight changes, so the drawdown comes only from unrelated
inputs that fall within ε. The paper picks ε on validation data (ε* = 6.5 FEVER, 3 zsRE, 2.5 Wikitext);
:func:`mendlight.editors.cache_epsilon.pick_epsilon` does that here.

The key of a decoder-only row is taken over its prompt tokens, of an encoder-decoder row over its encoder
input, of a classifier row over the claim. Teacher-forced, a matched row predicts the stored target's tokens
at its scored positions in order (a one-hot distribution with logit margin :data:`ANSWER_MARGIN`); a matched
classifier row gets the logit ``±ANSWER_MARGIN`` of the stored label.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import torch

from mendlight.data.batch import CondRows, TokenRows
from mendlight.editors.base import Editor
from mendlight.errors import ConfigError
from mendlight.models.functional import ParamDeltas

#: Logit margin of a cached answer over every other token (its probability is about 1 − V·e⁻²⁰).
ANSWER_MARGIN = 20.0


class CacheEdit(dict):
    """An edit that changes no weight (an empty delta mapping) and carries cache entries.

    Args:
        keys: ``[n, d]`` keys of the stored edit inputs.
        targets: ``[n, T]`` the stored targets' tokens in order (-100 after the end), or ``[n]`` labels.

    """

    def __init__(self, keys: torch.Tensor, targets: torch.Tensor) -> None:
        super().__init__()
        self.keys, self.targets = keys, targets

    def detached(self) -> CacheEdit:
        """The same entries without autograd history."""
        return CacheEdit(self.keys.detach(), self.targets)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def merged(self, other: CacheEdit) -> CacheEdit:
        """A cache holding these entries and then ``other``'s (sequential editing)."""
        if self.targets.ndim == 1:
            return CacheEdit(torch.cat([self.keys, other.keys]), torch.cat([self.targets, other.targets]))
        width = max(self.targets.shape[1], other.targets.shape[1])
        pad = [
            torch.nn.functional.pad(t, (0, width - t.shape[1]), value=-100)
            for t in (self.targets, other.targets)
        ]
        return CacheEdit(torch.cat([self.keys, other.keys]), torch.cat(pad))


def _target_tokens(labels: torch.Tensor) -> torch.Tensor:
    """Each row's scored labels in order, left-aligned and padded with -100 (``[rows]`` labels unchanged)."""
    if labels.ndim == 1:
        return labels.clone()
    rows = [row[row != -100] for row in labels]
    width = max((len(r) for r in rows), default=1)
    out = torch.full((len(rows), max(width, 1)), -100, dtype=labels.dtype, device=labels.device)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def input_mask(rows: TokenRows) -> torch.Tensor:
    """The mask of the tokens that make up each row's *input* (the cache key's tokens).

    The prompt of a decoder-only row (up to the position predicting its first target token); the whole
    encoder input or claim otherwise; every token of a row without targets or of a passage scored as text.
    """
    labels, mask = rows["labels"], rows["attention_mask"]
    if labels.ndim == 1 or "decoder_input_ids" in rows:
        return mask
    scored = labels != -100
    first = scored.float().argmax(-1)
    prompt_rows = scored.any(-1) & (first > 0)
    prompt = torch.arange(labels.shape[1], device=labels.device)[None] <= first[:, None]
    return (torch.where(prompt_rows[:, None], prompt, torch.ones_like(prompt)) & mask.bool()).long()


def _answered_positions(
    rows: TokenRows, cache: CacheEdit, match: torch.Tensor
) -> Iterator[tuple[int, int, int]]:
    """``(row, position, token)``: each scored position of a matched token row, with its stored target token.

    A matched row predicts the stored target's tokens at its scored positions in order (as many as both have).
    """
    for r in torch.nonzero(match >= 0).flatten().tolist():
        target = cache.targets[match[r]]
        positions = torch.nonzero(rows["labels"][r] != -100).flatten().tolist()
        for pos, token in zip(positions, target[target != -100].tolist(), strict=False):
            yield r, pos, token


class Cache(Editor):
    """The paper's caching baseline (Appendix G): nearest stored edit within ε in hidden-state space.

    Args:
        epsilon: the L2 radius within which an input counts as a stored edit's input (pick it on the
            validation split with ``python -m mendlight.editors.cache_epsilon``).
        **kwargs: base-model and reporting options of :class:`~mendlight.editors.base.Editor`.

    """

    requires_training = False
    #: An edit is a :class:`CacheEdit` (stored answers), not a weight delta: ``mendlight edit --save`` reads
    #: this (``getattr(editor, "edits_weights", True)``) and refuses, as there is no edited model to save.
    edits_weights: ClassVar[bool] = False

    def __init__(self, epsilon: float = 3.0, **kwargs) -> None:
        if not epsilon >= 0:
            raise ConfigError(f"Cache: epsilon must be at least 0, got {epsilon}")
        super().__init__(**kwargs)

    @torch.no_grad()
    def keys(self, rows: TokenRows) -> torch.Tensor:
        """``[rows, d]``: the mean final hidden state over each row's input tokens (:func:`input_mask`)."""
        ids, mask = rows["input_ids"], input_mask(rows)
        if not ids.shape[0]:
            return torch.zeros((0, int(self.base.config.get_text_config().hidden_size)), device=ids.device)
        if getattr(self.base.config, "is_encoder_decoder", False):
            hidden = self.base.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        else:
            hidden = self.base(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[
                -1
            ]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).float()

    def edit(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """Store each edit row's key and target; no weight changes."""
        return CacheEdit(self.keys(rows), _target_tokens(rows["labels"]))

    def edit_from(self, rows: TokenRows, cond: CondRows | None, current: ParamDeltas | None) -> ParamDeltas:
        """Sequential editing: the cache of earlier edits with this edit's entries added."""
        new = self.edit(rows)
        return current.merged(new) if isinstance(current, CacheEdit) else new

    def matches(self, rows: TokenRows, cache: CacheEdit) -> torch.Tensor:
        """``[rows]``: the index of the nearest stored edit within ε, or -1."""
        if not len(cache) or not rows["input_ids"].shape[0]:
            return torch.full(
                (rows["input_ids"].shape[0],), -1, dtype=torch.long, device=rows["input_ids"].device
            )
        dist = torch.cdist(self.keys(rows), cache.keys)
        best, index = dist.min(dim=1)
        return torch.where(best < self.hparams.epsilon, index, torch.full_like(index, -1))

    def _matches_of(self, rows: TokenRows, deltas: ParamDeltas | None) -> torch.Tensor | None:
        """:meth:`matches` against a cache edit, or None when there is none or no row matches."""
        if not isinstance(deltas, CacheEdit):
            return None
        match = self.matches(rows, deltas)
        return match if bool((match >= 0).any()) else None

    def forward_rows(
        self, rows: TokenRows, deltas: ParamDeltas | None = None, hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The unedited model's logits, with every row that matches a stored edit answering its target."""
        logits = super().forward_rows(rows, None, hidden)
        match = self._matches_of(rows, deltas)
        if match is None:
            return logits
        logits = logits.clone()
        if logits.ndim == 1:  # a classifier: the stored label's logit
            for r in torch.nonzero(match >= 0).flatten().tolist():
                logits[r] = ANSWER_MARGIN if int(deltas.targets[match[r]]) == 1 else -ANSWER_MARGIN
            return logits
        for r, pos, token in _answered_positions(rows, deltas, match):
            logits[r, pos] = 0.0
            logits[r, pos, token] = ANSWER_MARGIN
        return logits

    def eval_logits(
        self,
        rows: TokenRows,
        positions: torch.Tensor,
        deltas: ParamDeltas | None,
        hidden: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`forward_rows` read at ``positions`` (``[N, classes]``, row-major), without full logits.

        The unedited model's head runs at ``positions`` only (as for every other editor); a matched row's
        scored positions then answer its stored target, exactly as :meth:`forward_rows` would have, without
        making the ``[rows, T, vocab]`` logits of every row group.
        """
        if rows["labels"].ndim != 2:  # a classifier's logits are one per row: the whole form is cheap
            return super().eval_logits(rows, positions, deltas, hidden)
        logits = self.scored_logits(rows, positions, lambda: Editor.forward_rows(self, rows, None, hidden))
        match = self._matches_of(rows, deltas)
        if match is None:
            return logits
        logits = logits.clone()
        keep = positions.bool()
        packed_index = keep.reshape(-1).long().cumsum(0).reshape(keep.shape) - 1  # (row, t) → packed row
        for r, pos, token in _answered_positions(rows, deltas, match):
            if keep[r, pos]:
                at = int(packed_index[r, pos])
                logits[at] = 0.0
                logits[at, token] = ANSWER_MARGIN
        return logits

    def greedy_outputs(
        self, rows: TokenRows, deltas: ParamDeltas | None, max_new_tokens: int | None = None
    ) -> list[str]:
        """The unedited model's greedy outputs, with matched rows answering their stored target."""
        outputs = super().greedy_outputs(rows, None, max_new_tokens)
        if not isinstance(deltas, CacheEdit):
            return outputs
        for r, m in enumerate(self.matches(rows, deltas).tolist()):
            if m >= 0:
                target = deltas.targets[m]
                if target.ndim == 0:
                    outputs[r] = f"{'true' if int(target) == 1 else 'false'} (cached)"
                else:
                    outputs[r] = self.tokenizer.decode(target[target != -100], skip_special_tokens=True)
        return outputs
