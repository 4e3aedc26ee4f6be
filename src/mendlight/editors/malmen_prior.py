"""MALMEN's key prior: the second moment of every edited weight's keys over training edits.

MALMEN regularises its least-squares update by ``e^λ ‖ΔW‖²``, which treats every input direction alike. With
``prior: keys`` the regulariser is ``e^λ tr(ΔWᵀ C ΔW)`` instead (:mod:`mendlight.nn.least_squares`), where
``C`` is the second moment ``E[kkᵀ]`` of the weight's keys — taken exactly as MALMEN takes them (the same
tokens, answer or subject) — over the first ``prior_records`` edits of the training split, scaled to trace
``key_size`` (so that e^λ keeps the strength it has against ``I``) plus ``ridge·I``. This is MEMIT's
regulariser with the covariance of the edit keys themselves: the directions every edit of the corpus shares
(its question templates) become expensive to change, and the update is carried by what is particular to
each edit, which its rephrases share and the other edits do not (docs/algorithm.md §11.5c).

The prior is computed once per editor, from the attached data module, and is not saved in checkpoints
(recomputing it gives the same matrix: the first training records in file order, no sampling).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch
from pytorch_lightning.utilities import move_data_to_device, rank_zero_info
from torch import Tensor

from mendlight.editors.rows import row_chunks
from mendlight.errors import ConfigError

#: Values of MALMEN's ``prior`` option.
PRIOR_CHOICES = ("identity", "keys")
#: The ridge added to the normalised second moment (a share of its mean eigenvalue, which is 1).
PRIOR_RIDGE = 1e-2


def normalised_second_moment(gram: Tensor, count: int, ridge: float = PRIOR_RIDGE) -> Tensor:
    """``KᵀK / n`` scaled to trace ``key_size``, plus ``ridge·I``: a prior with the identity's mean scale.

    Args:
        gram: ``KᵀK``, ``[key_size, key_size]``.
        count: ``n``, the number of keys summed into it (at least 1).
        ridge: added on the diagonal after the scaling (keeps the prior invertible).

    """
    moment = gram / max(count, 1)
    size = moment.shape[0]
    trace = float(moment.trace())
    if not trace > 0:
        raise ConfigError("MALMEN(prior='keys'): the training edits gave this weight no nonzero key")
    eye = torch.eye(size, dtype=moment.dtype, device=moment.device)
    return moment * (size / trace) + ridge * eye


def key_priors(editor: Any, rows: dict[str, Tensor]) -> dict[str, Tensor]:
    """The prior of every edited weight from the keys MALMEN takes from ``rows`` (edit rows).

    Keys are accumulated ``lm_chunk`` rows at a time (``KᵀK`` only, never all keys at once), in float64.
    """
    grams: dict[str, Tensor] = {}
    counts = dict.fromkeys(editor.edit_names, 0)
    for start, chunk, hidden in row_chunks(rows, int(editor.hparams.lm_chunk), None):
        for name, (keys, _, _) in editor._chunk_factors(chunk, hidden, start).items():
            k = keys.double()
            grams[name] = grams.get(name, 0) + k.T @ k
            counts[name] += k.shape[0]
    priors = {}
    for name in editor.edit_names:
        if counts[name] == 0:
            raise ConfigError(
                f"MALMEN(prior='keys'): the training edits gave {name!r} no key (no gradient reaches it); "
                "edit other weights or use prior='identity'"
            )
        priors[name] = normalised_second_moment(grams[name], counts[name]).float()
    return priors


def priors_from_datamodule(editor: Any, datamodule: Any, n_records: int) -> dict[str, Tensor]:
    """:func:`key_priors` over the first ``n_records`` training records of ``datamodule``.

    Raises:
        ConfigError: without a data module (the message says how to give one).

    """
    if datamodule is None or not hasattr(datamodule, "records"):
        raise ConfigError(
            "MALMEN(prior='keys') computes its prior from the training edits of the run's data module: "
            "mendlight fit/test/edit attach it; in Python call editor.attach_datamodule(dm) first"
        )
    start = time.perf_counter()
    datamodule.setup_split("train")
    records = datamodule.records("train")[:n_records]
    if not records:
        raise ConfigError("MALMEN(prior='keys'): the training split holds no records")
    # only the edit rows are read: leave out the rephrase and locality rows the batch would also encode
    edit_only = [dataclasses.replace(r, rephrases=[], locality=[]) for r in records]
    rows = move_data_to_device(datamodule.make_batch(edit_only, train=False)["edit"], editor.device)
    priors = key_priors(editor, rows)
    seconds = time.perf_counter() - start
    rank_zero_info(f"MALMEN: key prior from {len(records)} training edits ({seconds:.0f} s)")
    return priors
