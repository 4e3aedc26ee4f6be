"""Greedy previews of an edit: what the unedited and the edited model answer to the same prompts.

``mendlight edit`` shows, for the edit prompts, their rephrases and the locality-check prompts, the greedy
answer before and after the edit, and marks each answer the edit changed. The answers come from the editor's
:meth:`~mendlight.editors.base.Editor.greedy_outputs`, so each editor is previewed the way it edits:

* a weight editor (MEND, FT, ...) writes its deltas into the weights for the duration
  (:func:`~mendlight.models.functional.materialised`) and decodes each prompt with ``model.generate()``
  (greedy, ``do_sample=False``, with its KV cache; the same tokens as a full forward pass per new token,
  :func:`~mendlight.models.functional.greedy_continuations`); the unedited answers are decoded once per
  prompt and reused;
* the Cache editor changes no weight: the unedited answers (decoded once) are shown, and a prompt within ε
  of a stored edit answers the stored target;
* a classifier answers ``true``/``false`` with its probability; only the label counts as a change.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import torch

from mendlight.data.batch import TokenRows, concat_rows, num_rows
from mendlight.editors.evaluation import prompt_inputs

#: A classifier's answer (``true (p_true=0.81)``, ``false (cached)``): only the label is compared.
_LABEL = re.compile(r"^(true|false) \((?:p_true=[-+0-9.e]+|cached)\)$")


def answer_key(text: str) -> str:
    """What decides whether an answer changed: the label of a classifier's answer, else the whole text."""
    found = _LABEL.match(text)
    return found.group(1) if found else text


@dataclass(frozen=True)
class Preview:
    """One prompt's greedy answer before and after the edit.

    Args:
        kind: what the prompt is (``edit``, ``rephrase``, ``same relation``, ``unrelated``, ``check``...).
        prompt: the prompt as the model reads it.
        pre: the unedited model's answer.
        post: the edited model's answer.

    """

    kind: str
    prompt: str
    pre: str
    post: str

    @property
    def changed(self) -> bool:
        """Whether the edit changed the answer (a classifier's label, or the generated text)."""
        return answer_key(self.pre) != answer_key(self.post)

    def to_dict(self) -> dict:
        """The preview as JSON-ready values, with ``changed``."""
        return {
            "kind": self.kind,
            "prompt": self.prompt,
            "pre": self.pre,
            "post": self.post,
            "changed": self.changed,
        }


def prompt_texts(model, rows: TokenRows) -> list[str]:
    """The prompt of each row as text (what the model continues; special tokens left out)."""
    ids, mask = prompt_inputs(rows)
    tok = model.tokenizer
    return [tok.decode(ids[r][mask[r].bool()], skip_special_tokens=True) for r in range(ids.shape[0])]


def encode_prompts(datamodule, prompts: list[str]) -> TokenRows:
    """Bare prompts as rows of the base model's layout, with nothing scored (no target)."""
    encoder = datamodule.encoder
    return encoder.pad([encoder.prompt_only(p) for p in prompts])


def preview_rows(
    model, rows: TokenRows, deltas, kinds: list[str], max_new_tokens: int | None
) -> list[Preview]:
    """Greedy answers of the unedited (``model.pre_edit_deltas()``) and the edited model (``deltas``).

    Args:
        model: the editor.
        rows: the prompts (an edit batch group, or :func:`encode_prompts`).
        deltas: the edit, as the editor's ``evaluate_batch`` left it (``model._last_deltas``).
        kinds: the kind of each row's prompt.
        max_new_tokens: greedy tokens per answer (None: the editor's ``sample_tokens``).

    """
    if not rows["input_ids"].shape[0]:
        return []
    with torch.no_grad():
        pre = model.greedy_outputs(rows, model.pre_edit_deltas(), max_new_tokens)
        post = model.greedy_outputs(rows, deltas, max_new_tokens)
    texts = prompt_texts(model, rows)
    return [Preview(k, t, a, b) for k, t, a, b in zip(kinds, texts, pre, post, strict=True)]


def timed_previews(
    model, groups: list[tuple[list[str], TokenRows]], deltas, max_new_tokens: int | None
) -> tuple[list[list[Preview]], float]:
    """:func:`preview_rows` of several groups at once, and the seconds it took.

    The groups (``(kinds, rows)``: one kind per row) are stacked into one batch
    (:func:`~mendlight.data.batch.concat_rows`), so the unedited and the edited model each decode every
    prompt in one ``generate()`` call rather than one call per group and row.

    Returns:
        The previews of each group, in order, and the seconds of the decoding.

    """
    start = time.perf_counter()
    filled = [(kinds, rows) for kinds, rows in groups if num_rows(rows)]
    previews: list[Preview] = []
    if filled:
        rows, _ = concat_rows([rows for _, rows in filled], model.pad_token_id)
        kinds = [kind for group_kinds, _ in filled for kind in group_kinds]
        previews = preview_rows(model, rows, deltas, kinds, max_new_tokens)
    out, at = [], 0
    for _, rows in groups:
        out.append(previews[at : at + num_rows(rows)])
        at += num_rows(rows)
    return out, time.perf_counter() - start
