"""Warnings and log lines that are expected on this stack, silenced once per command (docs/design.md §8.1)."""

from __future__ import annotations

import logging
import os
import warnings


class _NoLitLoggerTip(logging.Filter):
    """Drop Lightning's "try installing litlogger" tip."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


_NO_LITLOGGER_TIP = _NoLitLoggerTip()


def quiet_known_noise() -> None:
    """Silence warnings that are expected on this stack (docs/design.md §8.1)."""
    for pattern in (
        ".*isinstance.treespec, LeafSpec.*",
        ".*module\\(s\\) in eval mode.*",
        ".*litlogger.*",
        ".*does not have many workers.*",
        ".*The number of training batches.*",
        ".*when using `ckpt_path`, callbacks used to create the checkpoint.*",
        ".*The dirpath has changed from.*",
        # resuming mid-epoch is exact: the data module saves and restores the position in the training data
        ".*your dataloader is not resumable.*",
        # evaluation metrics are reduced over the processes by torchmetrics before they are logged
        ".*when logging on epoch level in distributed setting.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    # Lightning advertises its cloud logger on every run (an info line, not a warning)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NO_LITLOGGER_TIP)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)
