"""Tiny random models and a byte-level tokenizer, built offline in milliseconds.

These are what the test suite and ``configs/tiny_debug.yaml`` run on: real Hugging Face architectures built
from small configs with seeded random weights, so every code path (hooks, functional calls, checkpoints)
is exercised without a download. A reference such as ``tiny-random-llama`` selects one (see
:data:`TINY_CONFIGS`).
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

TINY_PREFIX = "tiny-random-"
_SPECIALS = ["<pad>", "<bos>", "<eos>"]
BYTE_VOCAB_SIZE = 256 + len(_SPECIALS)

#: Small configs by Hugging Face ``model_type``; every one shares the byte-level vocabulary.
TINY_CONFIGS: dict[str, dict] = {
    "llama": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    ),
    "gpt2": dict(n_embd=32, n_layer=4, n_head=4, n_positions=256),
    "gpt_neo": dict(
        hidden_size=32,
        num_layers=4,
        num_heads=4,
        max_position_embeddings=256,
        attention_types=[[["global", "local"], 2]],
        window_size=64,
    ),
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
    """Whether ``ref`` names a tiny random model (``tiny-random-<model_type>``)."""
    return ref.startswith(TINY_PREFIX)


def tiny_model_type(ref: str) -> str:
    """The ``model_type`` part of a ``tiny-random-<model_type>`` reference, checked against the table."""
    model_type = ref[len(TINY_PREFIX) :]
    if model_type not in TINY_CONFIGS:
        raise ValueError(
            f"unknown tiny model {ref!r}; choose one of: "
            + ", ".join(TINY_PREFIX + k for k in sorted(TINY_CONFIGS))
        )
    return model_type


def build_tiny_model(model_type: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """Build a tiny causal LM of ``model_type`` with seeded random weights (dropout off)."""
    kwargs = dict(TINY_CONFIGS[model_type])
    kwargs.update(overrides)
    kwargs.update(vocab_size=BYTE_VOCAB_SIZE, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config = AutoConfig.for_model(model_type, **kwargs)
    for attr in (
        "resid_pdrop",
        "embd_pdrop",
        "attn_pdrop",
        "attention_dropout",
        "embed_dropout",
        "resid_dropout",
        "hidden_dropout",
    ):
        if hasattr(config, attr):
            setattr(config, attr, 0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model
