"""Tiny random models and a byte-level tokenizer, built offline in milliseconds.

These are what the test suite and ``configs/tiny_debug.yaml`` run on: real Hugging Face architectures built
from small configs with seeded random weights, so every code path (hooks, functional calls, checkpoints)
is exercised without a download. A reference such as ``tiny-random-llama`` selects one (see
:data:`TINY_MODELS`): every family of the architecture table has one, in its layout — causal LMs,
sequence-to-sequence LMs (T5 v1.0 and the gated v1.1, BART) and a BERT binary classifier (one logit from a
linear head on the pooled output).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

from mendlight.errors import UnknownModelError

TINY_PREFIX = "tiny-random-"
_SPECIALS = ["<pad>", "<bos>", "<eos>"]
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
BYTE_VOCAB_SIZE = 256 + len(_SPECIALS)


@dataclass(frozen=True)
class TinySpec:
    """A tiny model: its Hugging Face ``model_type``, its config overrides and its Auto class.

    Attributes:
        model_type: the ``config.model_type``.
        config: config arguments (the byte vocabulary and special ids are added to every one).
        kind: ``causal``, ``seq2seq`` or ``classifier`` (which Auto class builds it).

    """

    model_type: str
    config: dict = field(default_factory=dict)
    kind: str = "causal"


_LLAMA_LIKE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=256,
    tie_word_embeddings=True,
)
_T5 = dict(
    d_model=32,
    d_ff=64,
    d_kv=8,
    num_heads=4,
    num_layers=4,
    num_decoder_layers=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=32,
    decoder_start_token_id=PAD_ID,  # T5 starts the decoder with its pad token
)

#: Tiny models by reference suffix (``tiny-random-<name>``); every one shares the byte-level vocabulary.
TINY_MODELS: dict[str, TinySpec] = {
    "llama": TinySpec("llama", _LLAMA_LIKE),
    "qwen2": TinySpec("qwen2", _LLAMA_LIKE),
    "mistral": TinySpec("mistral", {**_LLAMA_LIKE, "sliding_window": 64}),
    "gemma": TinySpec("gemma", _LLAMA_LIKE),
    "gpt2": TinySpec("gpt2", dict(n_embd=32, n_layer=4, n_head=4, n_positions=256)),
    "gpt_neo": TinySpec(
        "gpt_neo",
        dict(
            hidden_size=32,
            num_layers=4,
            num_heads=4,
            max_position_embeddings=256,
            attention_types=[[["global", "local"], 2]],
            window_size=64,
        ),
    ),
    "gptj": TinySpec("gptj", dict(n_embd=32, n_layer=4, n_head=4, rotary_dim=4, n_positions=256)),
    "t5": TinySpec("t5", {**_T5, "feed_forward_proj": "relu"}, "seq2seq"),
    "t5-v1_1": TinySpec(
        "t5", {**_T5, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}, "seq2seq"
    ),
    "bart": TinySpec(
        "bart",
        dict(
            d_model=32,
            encoder_layers=4,
            decoder_layers=4,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=256,
            decoder_start_token_id=EOS_ID,  # BART starts the decoder with </s> (docs/algorithm.md §5.2)
            forced_bos_token_id=None,
            forced_eos_token_id=None,
        ),
        "seq2seq",
    ),
    "bert": TinySpec(
        "bert",
        dict(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=256,
            num_labels=1,
        ),
        "classifier",
    ),
}
#: Backwards-compatible view: reference suffix → config arguments.
TINY_CONFIGS: dict[str, dict] = {name: spec.config for name, spec in TINY_MODELS.items()}

_DROPOUTS = (
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "attention_dropout",
    "embed_dropout",
    "resid_dropout",
    "hidden_dropout",
    "dropout",
    "dropout_rate",
    "activation_dropout",
    "classifier_dropout",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)
_AUTO = {
    "causal": AutoModelForCausalLM,
    "seq2seq": AutoModelForSeq2SeqLM,
    "classifier": AutoModelForSequenceClassification,
}


def build_byte_tokenizer() -> PreTrainedTokenizerFast:
    """Return a byte-level tokenizer: one token per UTF-8 byte plus ``<pad>``, ``<bos>``, ``<eos>``.

    It needs no files, round-trips any text exactly, and pads on the right like every mendlight tokenizer.
    """
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", padding_side="right"
    )
    assert len(fast) == BYTE_VOCAB_SIZE, len(fast)
    return fast


def is_tiny_ref(ref: str) -> bool:
    """Whether ``ref`` names a tiny random model (``tiny-random-<name>``)."""
    return ref.startswith(TINY_PREFIX)


def tiny_model_type(ref: str) -> str:
    """The ``<name>`` part of a ``tiny-random-<name>`` reference, checked against :data:`TINY_MODELS`.

    Raises:
        UnknownModelError: (a :class:`~mendlight.errors.ModelLoadError` and a ``ValueError``) if
            ``<name>`` is not a tiny model; the message lists the valid references.

    """
    name = ref[len(TINY_PREFIX) :]
    if name not in TINY_MODELS:
        raise UnknownModelError(
            f"unknown base model {ref!r}: no such tiny model; choose one of: "
            + ", ".join(TINY_PREFIX + k for k in sorted(TINY_MODELS))
        )
    return name


def tiny_config(name: str, **overrides) -> PretrainedConfig:
    """The config of tiny model ``name`` (byte vocabulary, dropout off), with ``overrides`` applied."""
    spec = TINY_MODELS[name]
    kwargs = dict(spec.config)
    kwargs.update(overrides)
    kwargs.update(vocab_size=BYTE_VOCAB_SIZE, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    for attr in _DROPOUTS:
        kwargs.setdefault(attr, 0.0)
    config = AutoConfig.for_model(spec.model_type, **kwargs)
    for attr in _DROPOUTS:  # some configs take the argument under another name; set what exists
        if isinstance(getattr(config, attr, None), float):
            setattr(config, attr, 0.0)
    return config


def build_tiny_model(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """Build tiny model ``name`` (a :data:`TINY_MODELS` key) with seeded random weights (dropout off)."""
    config = tiny_config(name, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _AUTO[TINY_MODELS[name].kind].from_config(config)
    return model
