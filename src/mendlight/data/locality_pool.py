"""Locality rows drawn on demand from a split's records, for editors that regularise every step (FT+KL).

The paper's FT+KL (docs/algorithm.md §3.2) draws a *new* locality batch from the **training** split at
every fine-tuning step of an edit and penalises the KL between the unedited and the edited model on it.
:class:`LocalityPool` collects the locality items of a split's records once and encodes ``n`` of them,
drawn with replacement, into a :class:`~mendlight.data.batch.TokenRows` group of the model's layout.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from mendlight.data.batch import TokenRows

if TYPE_CHECKING:
    from mendlight.data.module import EditDataModule


class LocalityPool:
    """The locality items of one split, encoded on demand.

    Args:
        datamodule: the data module (its tokenizer, layout and records); the split is loaded if needed.
        split: the split whose records' locality items are used (the paper: ``train``).

    Raises:
        ValueError: if no record of the split has a locality item.

    """

    def __init__(self, datamodule: EditDataModule, split: str = "train") -> None:
        if split not in datamodule.splits:
            datamodule.setup_split(split)
        self.datamodule = datamodule
        self.items = [(item, r.task) for r in datamodule.records(split) for item in r.locality]
        if not self.items:
            raise ValueError(f"no record of the {split!r} split has locality items to draw from")

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, n: int, rng: random.Random) -> TokenRows:
        """``n`` locality rows drawn with replacement by ``rng`` (without ``edit_index``)."""
        picks = [self.items[rng.randrange(len(self.items))] for _ in range(n)]
        return self.datamodule.encoder.pad([self.datamodule.locality_row(item, task) for item, task in picks])
