"""TensorBoard HPARAMS registration without fake metric points."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.tensorboard.summary import hparams


def write_hparams_summary(logger: TensorBoardLogger, params: dict[str, Any], metric_tags: list[str]) -> None:
    """Register hyperparameters and the metric tags the HPARAMS tab should show.

    ``TensorBoardLogger.log_hyperparams(params, metrics)`` also logs the placeholder metric values as real
    points at step 0; this writes only the HPARAMS summaries, so the tab fills from the real ``val/*``
    scalars as they are logged.
    """
    experiment, start, end = hparams(params, {tag: 0.0 for tag in metric_tags})
    writer = logger.experiment._get_file_writer()
    for summary in (experiment, start, end):
        writer.add_summary(summary)
