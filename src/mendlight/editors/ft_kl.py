"""FT+KL: the paper's test-time fine-tuning with a KL penalty to the unedited model (docs/algorithm.md §3.2).

Every fine-tuning step of an edit draws a *new* locality batch from the **training** split (the original's
"oracle" locality sampler) and minimises ``KL(p_θ(x_loc) ‖ p_θ+Δ(x_loc)) + c_edit_ft · NLL(x_e, y_e)``; the
stopping rule is FT's (every target token the argmax, or ``max_steps``). EasyEdit and ROME declare a
``kl_factor`` for fine-tuning but never use it; here the KL term is real and changes the edits (a test holds
the locality KL of FT+KL's edits below FT's with the same steps).
"""

from __future__ import annotations

import random
import zlib

import torch

from mendlight.data.batch import CondRows, TokenRows, score_mask
from mendlight.data.locality_pool import LocalityPool
from mendlight.data.module import SPLITS
from mendlight.editors.ft import FT
from mendlight.errors import ConfigError, check_at_least
from mendlight.losses import kl_locality
from mendlight.models.functional import ParamDeltas


class FTKL(FT):
    """FT+KL: fine-tune the edited weights on the edit while keeping the model close on locality inputs.

    Args:
        c_edit_ft: weight of the edit NLL in each step's loss (paper: 1e-2; 1e-3 for GPT-J).
        loc_batch_size: locality rows drawn at every step (paper: 1).
        loc_split: the split whose records' locality items are drawn (paper: ``train``).
        **kwargs: the options of :class:`~mendlight.editors.ft.FT` (``edit_lr``, ``max_steps``, ...).

    """

    def __init__(
        self, c_edit_ft: float = 1e-2, loc_batch_size: int = 1, loc_split: str = "train", **kwargs
    ) -> None:
        check_at_least("FTKL", "loc_batch_size", loc_batch_size, 1)
        if not c_edit_ft >= 0:
            raise ConfigError(f"FTKL: c_edit_ft must be at least 0, got {c_edit_ft}")
        if loc_split not in SPLITS:
            raise ConfigError(f"FTKL: loc_split={loc_split!r}; choose one of {', '.join(SPLITS)}")
        super().__init__(**kwargs)
        self.pool: LocalityPool | None = None
        self._rng = random.Random(0)

    def attach_datamodule(self, datamodule) -> None:
        """Draw locality rows from ``datamodule``'s ``loc_split`` records (called by every mendlight run)."""
        if datamodule is not None and self.pool is None:
            self.pool = LocalityPool(datamodule, self.hparams.loc_split)

    def edit(
        self, rows: TokenRows, hidden: torch.Tensor | None = None, cond: CondRows | None = None
    ) -> ParamDeltas:
        """FT's loop with the locality KL; the draws are seeded by the edit's tokens (reproducible)."""
        if self.pool is None:
            raise RuntimeError(
                "FT+KL draws locality rows from the training split: give it a data module "
                "(mendlight fit/test/edit do; in Python call editor.attach_datamodule(dm))"
            )
        self._rng = random.Random(zlib.crc32(rows["input_ids"].cpu().numpy().tobytes()))
        return super().edit(rows, hidden, cond)

    def nll_weight(self) -> float:
        """``c_edit_ft``: the weight of the edit NLL beside the KL."""
        return self.hparams.c_edit_ft

    def step_penalty(self, deltas: ParamDeltas, step: int) -> torch.Tensor:
        """``KL(pre ‖ post)`` on freshly drawn locality rows (added to ``c_edit_ft`` times the edit NLL)."""
        loc = self.pool.sample(self.hparams.loc_batch_size, self._rng)
        loc = {key: value.to(self.device) for key, value in loc.items()}  # the pool's rows are on the CPU
        hidden = self.bottom(loc)
        with torch.no_grad():
            pre = self.forward_rows(loc, None, hidden)
        post = self.forward_rows(loc, deltas, hidden)
        return kl_locality(pre, post, score_mask(loc))
