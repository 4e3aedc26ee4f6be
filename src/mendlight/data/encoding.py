"""Tokenisation of edit records into rows of the batch contract, one encoder per model layout.

:func:`make_encoder` returns the encoder of a layout (``model_kind`` of the base model's config):

* :class:`CausalEncoder` (decoder-only LMs): one row is ``prompt + target``; ``labels[t]`` is the token at
  ``t + 1`` on the target span (aligned with the logits) and -100 elsewhere. A ``completion`` target follows
  the prompt after one separating space, added only where it is missing: not if the prompt ends in
  whitespace or the target starts with it (as ROME and EasyEdit do), so ``"Rome"`` and ``" Rome"`` give the
  same row (:meth:`CausalEncoder.target_call`); a ``generation`` target is appended verbatim. It also makes
  full-text rows (:meth:`CausalEncoder.text`: every next token scored, for perplexity) and prefix-cut rows
  (:meth:`CausalEncoder.cut_prefix`: the Wikitext rephrase of docs/algorithm.md §5.4);
* :class:`Seq2SeqEncoder` (T5, BART): ``input_ids`` = the prompt with the tokenizer's special tokens;
  ``labels`` = target tokens (no leading space) + eos; ``decoder_input_ids`` =
  ``[decoder_start_token_id] + labels[:-1]``, so that labels line up with the decoder logits;
* :class:`ClassifierEncoder` (binary classifiers): ``input_ids`` = the claim with special tokens and one label
  per row, 1 for ``"true"``, 0 for ``"false"``.

Each encoder pads its rows into a :class:`~mendlight.data.batch.TokenRows` group (:meth:`RowEncoder.pad`):
ids with the pad id, masks with 0, labels with -100. :func:`check_task` says whether a record's ``task`` fits
a layout. A text that cannot give a row raises :class:`EncodingError` (a ``ValueError`` naming the text at
fault and, for a text too long, its length and the limit); :meth:`RowEncoder.check_pair` raises the same
without building the row, and :meth:`RowEncoder.checking` caches tokenisations while many rows are checked
(the data module checks every row of a split at ``setup``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from mendlight.data.batch import TokenRows
from mendlight.data.records import CLASS_LABELS, RecordError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
#: Model layouts (``mendlight.models.arch.model_kind``).
LAYOUTS: tuple[str, ...] = ("causal", "seq2seq", "classifier")
#: Record tasks each layout can encode.
LAYOUT_TASKS: dict[str, tuple[str, ...]] = {
    "causal": ("completion", "generation"),
    "seq2seq": ("completion",),
    "classifier": ("classification",),
}
_TASK_HINTS = {
    "classification": "classification records need a binary classifier base model (e.g. 'tiny-random-bert' "
    "or bert-base-uncased): set the editor's base model and the data module's 'tokenizer' to one",
    "generation": "generation records need a causal (decoder-only) language model: set the editor's base "
    "model and the data module's 'tokenizer' to one (e.g. distilgpt2)",
    "completion": "a classifier scores true/false claims only: use a dataset of classification records "
    "(task 'classification'), or set the editor's base model and the data module's 'tokenizer' to a "
    "causal or seq2seq language model",
}


class EncodingError(ValueError):
    """A text the encoder cannot turn into a row (too long for the limit, or no tokens).

    Args:
        message: the message (names the text and the limit).
        part: the text at fault: ``"prompt"``, ``"target"`` (the target or label of a pair) or ``"text"``
            (a full-text passage).
        what: for a row too long, the text as a message names it (``"target ' Paris' plus one prompt
            token"``).
        n_tokens: for a row too long, the tokens ``what`` takes.
        limit: for a row too long, the limit it exceeds.
        option: for a row too long, the data-module option of that limit (``max_length``).

    """

    def __init__(
        self,
        message: str,
        part: str,
        what: str | None = None,
        n_tokens: int | None = None,
        limit: int | None = None,
        option: str = "max_length",
    ) -> None:
        super().__init__(message)
        self.part = part
        self.what = what
        self.n_tokens = n_tokens
        self.limit = limit
        self.option = option

    @property
    def too_long(self) -> bool:
        """Whether the text does not fit the limit (``what``, ``n_tokens`` and ``limit`` are set)."""
        return self.n_tokens is not None


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 50 else shown[:47] + "..."


@dataclass
class EncodedRow:
    """One tokenised row before padding.

    Attributes:
        input_ids: the model (or encoder) input tokens.
        labels: logit-aligned labels (a list as long as ``input_ids`` for causal rows, as long as
            ``decoder_input_ids`` for seq2seq rows) or one int for classifier rows; -100 = not scored.
        decoder_input_ids: the decoder inputs of seq2seq rows, else None.

    """

    input_ids: list[int]
    labels: list[int] | int
    decoder_input_ids: list[int] | None = None


def check_task(task: str, layout: str, record_id: str | None, model_ref: str, source: str = "") -> None:
    """Raise :class:`RecordError` unless records of ``task`` can be encoded for a ``layout`` model.

    Args:
        task: the record's task (``completion``, ``classification`` or ``generation``).
        layout: the model layout (``causal``, ``seq2seq`` or ``classifier``).
        record_id: the record's id, named in the message.
        model_ref: the base-model reference (the data module's ``tokenizer`` option), named in the message.
        source: where the record comes from (a file), prefixed to the message.

    """
    if layout not in LAYOUT_TASKS:
        raise ValueError(f"unknown model layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if task in LAYOUT_TASKS[layout]:
        return
    where = f"{source}: " if source else ""
    raise RecordError(
        f"{where}record {record_id!r} has task {task!r}, which a {layout} base model ({model_ref!r}) cannot "
        f"score (a {layout} model takes {' or '.join(LAYOUT_TASKS[layout])} records); {_TASK_HINTS[task]}"
    )


def _split_specials(ids: list[int], specials: set[int]) -> tuple[list[int], list[int], list[int]]:
    """Split ids into (leading special tokens, content, trailing special tokens)."""
    head = 0
    while head < len(ids) and ids[head] in specials:
        head += 1
    tail = len(ids)
    while tail > head and ids[tail - 1] in specials:
        tail -= 1
    return ids[:head], ids[head:tail], ids[tail:]


def fit_ids(ids: list[int], budget: int, specials: set[int], keep: str = "end") -> list[int]:
    """Truncate ``ids`` to ``budget`` tokens, keeping leading/trailing special tokens when there is room.

    Args:
        ids: the tokens (with the tokenizer's special tokens).
        budget: the maximum length.
        specials: ids of the tokenizer's special tokens.
        keep: ``"end"`` cuts content tokens from the left (prompts, whose end the target follows);
            ``"start"`` cuts them from the right (claims, passages).

    """
    if len(ids) <= budget:
        return ids
    head, body, tail = _split_specials(ids, specials)
    room = budget - len(head) - len(tail)
    if room < 1:
        return ids[len(ids) - budget :] if keep == "end" else ids[:budget]
    body = body[len(body) - room :] if keep == "end" else body[:room]
    return head + body + tail


def _pad_2d(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max((len(s) for s in seqs), default=1)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def _mask(seqs: list[list[int]]) -> torch.Tensor:
    return _pad_2d([[1] * len(s) for s in seqs], 0)


class RowEncoder:
    """Base class of the layout encoders: the tokenizer, the length limits, and padding.

    Args:
        tokenizer: the base model's tokenizer (right padding, with a pad token).
        max_length: maximum tokens per row (encoder and decoder side separately for seq2seq).
        max_loc_length: maximum tokens of a full-text locality row; defaults to ``max_length``.

    """

    layout: ClassVar[str] = ""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int, max_loc_length: int | None = None
    ) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; rows cannot be padded")
        self.tok = tokenizer
        self.max_length = max_length
        self.max_loc_length = max_loc_length or max_length
        self.pad_id = int(tokenizer.pad_token_id)
        self.specials = {int(i) for i in tokenizer.all_special_ids}
        special_texts = sorted(
            {str(t) for t in tokenizer.all_special_tokens if str(t)}, key=len, reverse=True
        )
        self._special_text = re.compile("|".join(map(re.escape, special_texts))) if special_texts else None
        #: While :meth:`checking` is open: token ids by ``(text, special)``, and whether a character alone
        #: gives a content token.
        self._ids_cache: dict[tuple[str, bool], list[int]] | None = None
        self._char_tokens: dict[str, bool] | None = None

    def ids(self, text: str, special: bool) -> list[int]:
        """Token ids of ``text``, with the tokenizer's default special tokens if ``special``."""
        if self._ids_cache is None:
            return list(self.tok(text, add_special_tokens=special)["input_ids"])
        key = (text, special)
        ids = self._ids_cache.get(key)
        if ids is None:
            ids = self._ids_cache[key] = list(self.tok(text, add_special_tokens=special)["input_ids"])
        return list(ids)

    def _batch_ids(self, texts: list[str], special: bool) -> list[list[int]]:
        """Token ids of many texts, as :meth:`ids` gives them, in one call of the tokenizer's backend."""
        first = list(self.tok(texts[0], add_special_tokens=special)["input_ids"])  # sets up the backend
        backend = getattr(self.tok, "backend_tokenizer", None)
        if hasattr(backend, "encode_batch_fast"):  # a fast tokenizer: skip the per-text Python wrappers
            out = [list(e.ids) for e in backend.encode_batch_fast(texts, add_special_tokens=special)]
            if out[0] == first:
                return out
        return [list(row) for row in self.tok(texts, add_special_tokens=special)["input_ids"]]

    @contextmanager
    def checking(
        self, calls: Iterable[tuple[str, bool]] = (), prompts: Iterable[str] = (), batch_size: int = 4096
    ) -> Iterator[None]:
        """Cache tokenisations while many rows are checked (:meth:`check_pair`, at ``setup``).

        While the context is open each distinct text is tokenised once, and each character of a prompt
        once, on its own (:meth:`_surely_has_tokens`); the caches are dropped on exit.

        Args:
            calls: ``(text, special)`` pairs to tokenise in advance, in batches (much faster than a call per
                text): the :meth:`target_call` of each pair and ``(passage, True)`` of each full text.
            prompts: the prompts to be checked, whose characters are tokenised in advance.
            batch_size: texts per tokenizer call.

        """
        self._ids_cache, self._char_tokens = {}, {}
        try:
            chars = sorted(set("".join(prompts)))
            for start in range(0, len(chars), batch_size):
                chunk = chars[start : start + batch_size]
                for char, ids in zip(chunk, self._batch_ids(chunk, special=False), strict=True):
                    self._char_tokens[char] = bool(_split_specials(ids, self.specials)[1])
            calls = list(calls)
            for special in (True, False):
                texts = list(dict.fromkeys(text for text, sp in calls if sp is special))
                for start in range(0, len(texts), batch_size):
                    chunk = texts[start : start + batch_size]
                    ids = self._batch_ids(chunk, special)
                    self._ids_cache.update(((t, special), row) for t, row in zip(chunk, ids, strict=True))
            yield
        finally:
            self._ids_cache, self._char_tokens = None, None

    def _surely_has_tokens(self, text: str) -> bool:
        """Inside :meth:`checking`: whether ``text`` surely gives a content token, without tokenising it.

        True if one of its characters gives a content token on its own and it holds no special-token text
        (such as ``</s>``, which the tokenizer would read as that special token). Tokenizers map text to
        tokens losslessly or normalise character by character, so such a character still gives a token in
        context. False means "tokenise to know" (and always, outside :meth:`checking`).
        """
        known = self._char_tokens
        if known is None or (self._special_text is not None and self._special_text.search(text)):
            return False
        for char in text:
            has = known.get(char)
            if has is None:
                has = known[char] = bool(_split_specials(self.ids(char, special=False), self.specials)[1])
            if has:
                return True
        return False

    def target_call(self, prompt: str, target: str, verbatim: bool = False) -> tuple[str, bool] | None:
        """The ``(text, special)`` tokenisation of the target side of :meth:`pair` (None: not tokenised)."""
        return (target, False)

    def check_pair(self, prompt: str, target: str, verbatim: bool = False) -> None:
        """Raise the :class:`EncodingError` (a ``ValueError``) :meth:`pair` would raise, if any.

        Cheaper than :meth:`pair`: the row is not built, and inside :meth:`checking` a prompt is not
        tokenised when it surely gives tokens (prompts are truncated to fit, so only "no tokens" can fail).
        """
        self.pair(prompt, target, verbatim)

    def check_text(self, text: str) -> None:
        """Raise the error :meth:`text` would raise for a full-text passage, if any."""
        self.text(text)

    def pair(self, prompt: str, target: str, verbatim: bool = False) -> EncodedRow:
        """Encode a prompt with its target (``verbatim``: no separating space; generation records)."""
        raise NotImplementedError

    def prompt_only(self, prompt: str) -> EncodedRow:
        """Encode a prompt without a target: nothing is scored (a ``true`` row without ``target_true``)."""
        raise NotImplementedError

    def text(self, text: str) -> EncodedRow:
        """Encode a whole passage as LM text (causal models only)."""
        raise TypeError(f"a {self.layout} model cannot score full-text rows; they need a causal LM")

    def cut_prefix(self, row: EncodedRow, rng: random.Random) -> EncodedRow:
        """Cut a prefix of a row's prompt (causal models only)."""
        raise TypeError(f"a {self.layout} model has no prefix-cut rows; they need a causal LM")

    def pad_ids(self, seqs: list[list[int]]) -> dict[str, torch.Tensor]:
        """Right-pad plain token sequences into ``input_ids``/``attention_mask`` (the ``cond`` group)."""
        return {"input_ids": _pad_2d(seqs, self.pad_id), "attention_mask": _mask(seqs)}

    def subject_position(self, input_ids: list[int], prompt: str, subject: str | None) -> int:
        """Index in a row's ``input_ids`` of the token holding the last character of ``subject``.

        The subject's first occurrence counts; the token may run past the subject's end (``"oblast'?"`` is
        one token). -1 where the record names no subject, the prompt does not contain it, or the row does not
        start with the prompt's tokens (a prompt cut on its left).
        """
        at = prompt.find(subject) if subject else -1
        if at < 0:
            return -1
        last_char = at + len(subject) - 1  # type: ignore[arg-type]
        try:
            encoded = self.tok(prompt, add_special_tokens=True, return_offsets_mapping=True)
        except NotImplementedError:  # a slow tokenizer: no offsets
            return -1
        ids = list(encoded["input_ids"])
        if input_ids[: len(ids)] != ids:
            return -1
        for index, (begin, stop) in enumerate(encoded["offset_mapping"]):
            if begin <= last_char < stop and ids[index] not in self.specials:
                return index
        return -1

    def pad(self, rows: list[EncodedRow], edit_index: list[int] | None = None) -> TokenRows:
        """Right-pad rows into a group (``[0, 1]`` tensors, ``[0]`` classifier labels, if ``rows`` is empty).

        Args:
            rows: the encoded rows.
            edit_index: the edit row of each row (equivalence and locality groups), stored as ``edit_index``.

        """
        group: dict[str, torch.Tensor] = {
            "input_ids": _pad_2d([r.input_ids for r in rows], self.pad_id),
            "attention_mask": _mask([r.input_ids for r in rows]),
        }
        if self.layout == "seq2seq":
            decoder = [r.decoder_input_ids or [] for r in rows]
            group["decoder_input_ids"] = _pad_2d(decoder, self.pad_id)
            group["decoder_attention_mask"] = _mask(decoder)
        if self.layout == "classifier":
            group["labels"] = torch.tensor([int(r.labels) for r in rows], dtype=torch.long)  # type: ignore[arg-type]
        else:
            group["labels"] = _pad_2d([list(r.labels) for r in rows], IGNORE_INDEX)  # type: ignore[arg-type]
        if edit_index is not None:
            group["edit_index"] = torch.tensor(edit_index, dtype=torch.long)
        return group  # type: ignore[return-value]


class CausalEncoder(RowEncoder):
    """Rows of decoder-only LMs: ``prompt + target`` with labels shifted onto the logits (module doc)."""

    layout = "causal"

    def pair(self, prompt: str, target: str, verbatim: bool = False) -> EncodedRow:
        """Encode ``prompt`` + ``target``; ``labels[i]`` is the token at ``i + 1`` on the target span.

        The prompt gets the tokenizer's default special tokens; the target follows after one separating space
        where one is missing (:meth:`target_call`), without special tokens. A prompt too long for
        ``max_length`` loses tokens on its left (leading special tokens such as BOS are kept).

        Raises:
            EncodingError: (a ``ValueError``) if the prompt or target gives no tokens, or the target alone
                does not fit.

        """
        prompt_ids = self._prompt_ids(prompt)
        target_ids = self._target_ids(prompt, target, verbatim)
        prompt_ids = fit_ids(prompt_ids, self.max_length - len(target_ids), self.specials, keep="end")
        labels = [IGNORE_INDEX] * (len(prompt_ids) - 1) + target_ids + [IGNORE_INDEX]
        return EncodedRow(prompt_ids + target_ids, labels)

    def _prompt_ids(self, prompt: str) -> list[int]:
        prompt_ids = self.ids(prompt, special=True)
        if not prompt_ids:
            raise EncodingError(
                f"prompt {prompt!r} gives no tokens, so nothing can predict the target", "prompt"
            )
        return prompt_ids

    def _target_ids(self, prompt: str, target: str, verbatim: bool) -> list[int]:
        """The target's tokens, which must leave room for at least one prompt token."""
        text, _ = self.target_call(prompt, target, verbatim)
        target_ids = self.ids(text, special=False)
        if not target_ids:
            raise EncodingError(f"target {target!r} of prompt {prompt!r} gives no tokens", "target")
        if len(target_ids) >= self.max_length:
            raise EncodingError(
                f"target {target!r} has {len(target_ids)} tokens and does not fit "
                f"max_length={self.max_length} with at least one prompt token; raise max_length or shorten "
                "the target",
                "target",
                what=f"target {_short(text)} plus one prompt token",
                n_tokens=len(target_ids) + 1,
                limit=self.max_length,
            )
        return target_ids

    def target_call(self, prompt: str, target: str, verbatim: bool = False) -> tuple[str, bool]:
        """The target as it is tokenised: after one separating space, added only where it is missing.

        No space is added to a ``verbatim`` target (generation records: the continuation as it is), after a
        prompt that ends in whitespace, or before a target that starts with whitespace. This is the rule of
        ROME and EasyEdit (which prepend a space to a target that lacks one): ``"Rome"`` and ``" Rome"``
        after ``"The capital of France is"`` are both tokenised as ``" Rome"``, never with two spaces.

        Returns:
            The text and ``False`` (the target gets no special tokens).

        """
        missing = not (verbatim or prompt[-1:].isspace() or target[:1].isspace())
        return ((" " if missing else "") + target, False)

    def check_pair(self, prompt: str, target: str, verbatim: bool = False) -> None:
        """Raise the error :meth:`pair` would raise, if any (see :meth:`RowEncoder.check_pair`)."""
        if not self._surely_has_tokens(prompt):
            self._prompt_ids(prompt)
        self._target_ids(prompt, target, verbatim)

    def prompt_only(self, prompt: str) -> EncodedRow:
        """Encode a prompt without a target (every label -100), truncated like :meth:`pair`."""
        ids = fit_ids(self.ids(prompt, special=True), self.max_length, self.specials, keep="end")
        return EncodedRow(ids, [IGNORE_INDEX] * len(ids))

    def text(self, text: str) -> EncodedRow:
        """Encode a whole passage as LM text: every next token is scored (``labels[i] = ids[i + 1]``).

        The passage gets the tokenizer's default special tokens and keeps its first ``max_loc_length``
        tokens.

        Raises:
            EncodingError: (a ``ValueError``) if the passage gives fewer than two tokens (nothing to predict).

        """
        ids = self.ids(text, special=True)[: self.max_loc_length]
        if len(ids) < 2:
            raise EncodingError(
                f"locality passage {text!r} gives fewer than two tokens; nothing can be scored", "text"
            )
        return EncodedRow(ids, ids[1:] + [IGNORE_INDEX])

    def prefix_length(self, row: EncodedRow) -> int:
        """Number of prompt tokens of a :meth:`pair` row, not counting its leading special tokens."""
        labels: list[int] = row.labels  # type: ignore[assignment]
        prompt_len = next(i for i, lab in enumerate(labels) if lab != IGNORE_INDEX) + 1
        head, _, _ = _split_specials(row.input_ids[: prompt_len - 1], self.specials)
        return prompt_len - len(head)

    def cut_prefix(self, row: EncodedRow, rng: random.Random) -> EncodedRow:
        """The generation rephrase (docs/algorithm.md §5.4): ``row`` less its first ``remove`` prompt tokens.

        ``remove`` is drawn from ``rng`` uniformly in ``[0, prefix_length(row) // 2]``; leading special
        tokens (BOS) stay, and the labels move with the tokens, so the target span is unchanged.
        """
        labels: list[int] = row.labels  # type: ignore[assignment]
        n_prefix = self.prefix_length(row)
        head = next(i for i, lab in enumerate(labels) if lab != IGNORE_INDEX) + 1 - n_prefix  # specials
        remove = rng.randint(0, n_prefix // 2)
        return EncodedRow(
            row.input_ids[:head] + row.input_ids[head + remove :], labels[:head] + labels[head + remove :]
        )


class Seq2SeqEncoder(RowEncoder):
    """Rows of encoder-decoder models (T5, BART): prompt → encoder, target + eos → decoder labels.

    Args:
        tokenizer: the base model's tokenizer (with pad and eos tokens).
        max_length: maximum tokens of the encoder input and, separately, of the decoder labels.
        decoder_start_token_id: ``config.decoder_start_token_id`` (T5: pad, BART: eos).
        max_loc_length: unused (seq2seq rows have no full-text form); kept for a uniform signature.

    """

    layout = "seq2seq"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        decoder_start_token_id: int,
        max_loc_length: int | None = None,
    ) -> None:
        super().__init__(tokenizer, max_length, max_loc_length)
        if tokenizer.eos_token_id is None:
            raise ValueError("a seq2seq tokenizer needs an eos token to end the decoder labels")
        self.eos_id = int(tokenizer.eos_token_id)
        self.start_id = int(decoder_start_token_id)

    def _encoder_ids(self, prompt: str) -> list[int]:
        ids = self.ids(prompt, special=True)
        if not _split_specials(ids, self.specials)[1]:
            raise EncodingError(
                f"prompt {prompt!r} gives no tokens, so nothing can predict the target", "prompt"
            )
        return fit_ids(ids, self.max_length, self.specials, keep="end")

    def pair(self, prompt: str, target: str, verbatim: bool = False) -> EncodedRow:
        """Encode ``prompt`` for the encoder and ``target`` + eos as logit-aligned decoder labels.

        ``decoder_input_ids = [decoder_start_token_id] + labels[:-1]``. The target gets no leading space
        (``verbatim`` changes nothing). A prompt too long for ``max_length`` loses tokens on its left (its
        special tokens are kept).

        Raises:
            EncodingError: (a ``ValueError``) if the prompt or target gives no tokens, or the target with eos
                exceeds max_length.

        """
        enc = self._encoder_ids(prompt)
        labels = self._labels(prompt, target)
        return EncodedRow(enc, labels, [self.start_id] + labels[:-1])

    def _labels(self, prompt: str, target: str) -> list[int]:
        target_ids = self.ids(target, special=False)
        if not target_ids:
            raise EncodingError(f"target {target!r} of prompt {prompt!r} gives no tokens", "target")
        labels = target_ids + [self.eos_id]
        if len(labels) > self.max_length:
            raise EncodingError(
                f"target {target!r} has {len(labels)} decoder tokens (with eos) and does not fit "
                f"max_length={self.max_length}; raise max_length or shorten the target",
                "target",
                what=f"target {_short(target)} with eos",
                n_tokens=len(labels),
                limit=self.max_length,
            )
        return labels

    def check_pair(self, prompt: str, target: str, verbatim: bool = False) -> None:
        """Raise the error :meth:`pair` would raise, if any (see :meth:`RowEncoder.check_pair`)."""
        if not self._surely_has_tokens(prompt):
            self._encoder_ids(prompt)
        self._labels(prompt, target)

    def prompt_only(self, prompt: str) -> EncodedRow:
        """Encode a prompt with one unscored decoder position (``[start]``, label -100)."""
        return EncodedRow(self._encoder_ids(prompt), [IGNORE_INDEX], [self.start_id])


class ClassifierEncoder(RowEncoder):
    """Rows of binary classifiers: the claim with special tokens and one label, 1 (true) or 0 (false)."""

    layout = "classifier"

    def _claim_ids(self, claim: str) -> list[int]:
        ids = self.ids(claim, special=True)
        if not _split_specials(ids, self.specials)[1]:
            raise EncodingError(f"claim {claim!r} gives no tokens", "prompt")
        return fit_ids(ids, self.max_length, self.specials, keep="start")

    def pair(self, prompt: str, target: str, verbatim: bool = False) -> EncodedRow:
        """Encode a claim with its label ``target`` (``"true"`` → 1, ``"false"`` → 0).

        A claim too long for ``max_length`` loses tokens on its right (its special tokens are kept).

        Raises:
            EncodingError: (a ``ValueError``) if ``target`` is not a class label or the claim gives no tokens.

        """
        self._check_label(prompt, target)
        return EncodedRow(self._claim_ids(prompt), CLASS_LABELS.index(target))

    @staticmethod
    def _check_label(prompt: str, target: str) -> None:
        if target not in CLASS_LABELS:
            raise EncodingError(
                f"label {target!r} of claim {prompt!r} must be 'true' or 'false' for a classifier model",
                "target",
            )

    def target_call(self, prompt: str, target: str, verbatim: bool = False) -> None:
        """None: a label is not tokenised."""
        return None

    def check_pair(self, prompt: str, target: str, verbatim: bool = False) -> None:
        """Raise the error :meth:`pair` would raise, if any (see :meth:`RowEncoder.check_pair`)."""
        self._check_label(prompt, target)
        if not self._surely_has_tokens(prompt):
            self._claim_ids(prompt)

    def prompt_only(self, prompt: str) -> EncodedRow:
        """Encode a claim without a label (-100)."""
        return EncodedRow(self._claim_ids(prompt), IGNORE_INDEX)


def make_encoder(
    layout: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    max_loc_length: int | None = None,
    decoder_start_token_id: int | None = None,
) -> RowEncoder:
    """Return the encoder of a model layout.

    Args:
        layout: ``causal``, ``seq2seq`` or ``classifier`` (``mendlight.models.arch.model_kind``).
        tokenizer: the base model's tokenizer.
        max_length: maximum tokens per row.
        max_loc_length: maximum tokens of a full-text locality row (causal only); defaults to ``max_length``.
        decoder_start_token_id: the first decoder input of seq2seq rows (required for ``seq2seq``).

    """
    if layout == "causal":
        return CausalEncoder(tokenizer, max_length, max_loc_length)
    if layout == "seq2seq":
        if decoder_start_token_id is None:
            raise ValueError(
                "the seq2seq base model's config has no decoder_start_token_id; set it in the model config"
            )
        return Seq2SeqEncoder(tokenizer, max_length, decoder_start_token_id, max_loc_length)
    if layout == "classifier":
        return ClassifierEncoder(tokenizer, max_length, max_loc_length)
    raise ValueError(f"unknown model layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
