"""Base models the user already holds: a ``transformers`` model object, used with no reference to load.

Editors name their base model by a string reference (saved in checkpoints and configs). A model object the
user loaded is given such a name by :func:`register_model` — ``in-memory:<class>-<n>`` — and the loaders of
:mod:`mendlight.models.loading` return the registered object (frozen: no gradients, eval mode) and a copy of
its tokenizer (padding on the right, with a pad token). The registry holds weak references: it never keeps a
model alive, and a name whose model is gone is an error saying so. Such a name means nothing in another
process: a checkpoint trained on one records it, and loading that checkpoint elsewhere needs the model again
(``mendlight.load_editor(ckpt, model=...)``).
"""

from __future__ import annotations

import copy
import itertools
import weakref
from typing import Any

from mendlight.errors import ModelLoadError

PREFIX = "in-memory:"
_models: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_tokenizers: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_counter = itertools.count()


def register_model(model: Any, tokenizer: Any) -> str:
    """Name ``model`` (and its ``tokenizer``) so that editors can use it as their base model.

    Args:
        model: a ``transformers`` ``PreTrainedModel`` (causal LM, encoder-decoder LM or sequence classifier).
        tokenizer: its tokenizer.

    Returns:
        The reference, ``in-memory:<model class>-<n>``, unique in this process.

    Raises:
        TypeError: if ``model`` has no ``config`` (not a ``transformers`` model) or ``tokenizer`` is None.

    """
    if getattr(model, "config", None) is None:
        raise TypeError(f"model must be a transformers PreTrainedModel, got {type(model).__name__}")
    if tokenizer is None:
        raise TypeError("a model object needs its tokenizer: pass tokenizer=...")
    ref = f"{PREFIX}{type(model).__name__}-{next(_counter)}"
    _models[ref] = model
    _tokenizers[ref] = tokenizer
    return ref


def is_in_memory_ref(ref: object) -> bool:
    """Whether ``ref`` names a registered model object (see :func:`register_model`)."""
    return isinstance(ref, str) and ref.startswith(PREFIX)


def _lookup(table: weakref.WeakValueDictionary, ref: str, what: str) -> Any:
    found = table.get(ref)
    if found is None:
        raise ModelLoadError(
            f"base model {ref!r} was a model object of another process or one that no longer exists; pass "
            f"the {what} again (mendlight.load_editor(..., model=..., tokenizer=...))"
        )
    return found


def in_memory_model(ref: str) -> Any:
    """The model object registered as ``ref``."""
    return _lookup(_models, ref, "model")


def in_memory_tokenizer(ref: str) -> Any:
    """A copy of the tokenizer registered with ``ref``, padding on the right, with a pad token."""
    tok = copy.deepcopy(_lookup(_tokenizers, ref, "tokenizer"))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok
