"""Which tokens key a MALMEN edit: the labelled (answer) stream, the encoder, or the subject's last token.

MALMEN's solve takes one key per scored token of every edit (``key_tokens: answer``); in the encoder of an
encoder-decoder model every token the edit loss reaches is a key; with ``key_tokens: subject`` the one key of
an edit is at the last token of its subject (the edit rows' ``subject_last``). These helpers tell the
editor which of a layer's token rows are keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mendlight.data.batch import TokenRows
from mendlight.errors import ConfigError


def subject_tokens(rows: TokenRows, n_tokens: int, name: str) -> Tensor:
    """The ``[n_tokens]`` mask of each edit row's subject's last token (``key_tokens='subject'``).

    Raises:
        ConfigError: if the rows carry no subject position, or some row has none (-1).

    """
    last = rows.get("subject_last")
    if last is None or bool((last < 0).any()):
        missing = (
            "no subject_last" if last is None else f"no subject in edit row {int((last < 0).nonzero()[0])}"
        )
        raise ConfigError(
            f"MALMEN(key_tokens='subject'): these edit rows have {missing}. Subject keys need records that "
            "name their subject (the `subject` field) inside the prompt, batched by the data module; "
            "otherwise use key_tokens='answer'"
        )
    ids = rows["input_ids"]
    if n_tokens != ids.numel():
        raise RuntimeError(f"{name!r} ran on {n_tokens} token rows, not on the input's {ids.numel()}")
    mask = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    mask[torch.arange(ids.shape[0], device=ids.device), last.to(ids.device)] = True
    return mask.reshape(-1)


def reads_decoder_stream(model: nn.Module, name: str) -> bool:
    """Whether weight ``name`` is in the decoder of an encoder-decoder model (it never sees the input)."""
    return bool(getattr(model.config, "is_encoder_decoder", False)) and reads_labelled_stream(model, name)


def reads_labelled_stream(model: nn.Module, name: str) -> bool:
    """Whether the layer of weight ``name`` runs on the token rows the labels score.

    True for every layer of a decoder-only model and for the decoder of an encoder-decoder model; False for
    its encoder, whose tokens are not the labelled ones (its keys are then every token the loss reaches).
    """
    if not getattr(model.config, "is_encoder_decoder", False):
        return True
    layer = model.get_submodule(name.rsplit(".", 1)[0])
    return not any(module is layer for module in model.get_encoder().modules())
