"""What an editor writes at the end of validation and test: TensorBoard tables, results files, HPARAMS."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from pytorch_lightning import LightningModule
from pytorch_lightning.loggers import TensorBoardLogger

from mendlight.editors.evaluation import POSITION_FIELD
from mendlight.editors.reports_figures import log_test_dashboards
from mendlight.metrics import PROTOCOLS
from mendlight.reporting import build_results, results_markdown, write_results

log = logging.getLogger(__name__)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", "⏎")


def samples_markdown(samples: list[dict]) -> str:
    """A Markdown table of sample edits: prompt, target, pre-edit and post-edit greedy output."""
    lines = ["| prompt | target | pre-edit output | post-edit output | success |", "|---|---|---|---|---|"]
    for s in samples:
        lines.append(
            f"| {_cell(s['prompt'])} | {_cell(s['target'])} | {_cell(s['pre_output'])} | "
            f"{_cell(s['post_output'])} | {'✓' if s['es_edit'] else '✗'} |"
        )
    return "\n".join(lines)


def _experiment(editor: LightningModule):
    logger = editor.logger
    return logger.experiment if isinstance(logger, TensorBoardLogger) else None


def log_samples(editor: LightningModule, stage: str) -> None:
    """Write the epoch's sample edits to TensorBoard's TEXT tab (rank 0 only)."""
    experiment = _experiment(editor)
    if editor._samples and experiment is not None and editor.trainer.is_global_zero:
        experiment.add_text(f"{stage}/sample_edits", samples_markdown(editor._samples), editor.global_step)


def _gather(rows: list[dict]) -> list[dict]:
    """Every process's per-record rows (a collective call), in split order, each record once.

    Rows carry their record's position in the split (``_position``, removed here); the evaluation sampler
    gives every record to exactly one process, so a repeated position would be a bug, and is refused.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts: list = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, rows)
        rows = [row for part in parts for row in part]
    positions = [row.get(POSITION_FIELD) for row in rows]
    if rows and all(p is not None for p in positions):
        if len(set(positions)) != len(positions):
            raise RuntimeError("a test record was evaluated twice; the evaluation sampler is broken")
        rows = sorted(rows, key=lambda row: row[POSITION_FIELD])
    return [{k: v for k, v in row.items() if k != POSITION_FIELD} for row in rows]


def run_dir(editor: LightningModule) -> Path:
    """Where this run's files go: the logger's version directory, else the trainer's root directory.

    The directory fixed in :meth:`Editor.setup` (read by every process together); outside a multi-process run
    it may also be read here.
    """
    if editor._run_dir is not None:
        return editor._run_dir
    trainer = editor.trainer
    return Path(trainer.log_dir or trainer.default_root_dir)


def finish_test(editor: LightningModule) -> None:
    """Write results.json / results.md, print the table, and fill TensorBoard's HPARAMS and TEXT tabs."""
    log_samples(editor, "test")
    rows = _gather(editor._records)
    if not editor.trainer.is_global_zero or not rows:
        return
    datamodule = getattr(editor.trainer, "datamodule", None)
    dataset = str(getattr(getattr(datamodule, "hparams", {}), "get", lambda *_: "?")("dataset", "?"))
    sequential = int(editor.hparams.get("sequential", 0) or 0)
    edits = (
        f"sequential: chains of {sequential} test batches, each edited on the model the earlier edits of its "
        "chain left; every batch evaluated after the chain's last edit"
        if sequential
        else "each test batch is edited from the unedited base; k simultaneous edits per batch"
    )
    protocol = {
        "edits": edits,
        "sequential": sequential,
        "n_edits_per_batch": getattr(datamodule, "eval_batch_size", None) if datamodule else None,
        "labels": "teacher-forced: the prompt is followed by the target tokens",
        "metrics": PROTOCOLS,
    }
    results = build_results(
        rows,
        editor=type(editor).__name__,
        base_model=editor.hparams.base_model,
        dataset=dataset,
        split="test",
        protocol=protocol,
        extra={"hparams": editor.loggable_hparams(), "skipped_steps": int(editor.skipped_steps)},
    )
    directory = run_dir(editor)
    json_path, md_path = write_results(directory, results)
    table = results_markdown(results)
    print("\n" + table + f"\n\nWrote {json_path} and {md_path}\n")
    experiment = _experiment(editor)
    if experiment is not None:
        step = max(editor.checkpoint_step, editor.global_step)
        experiment.add_text("test/results", table, step)
        log_test_dashboards(experiment, results, step)
        summary = results["subsets"]["all"]
        metrics = {
            f"test/{k}": float(v) for k, v in summary.items() if isinstance(v, int | float) and v is not None
        }
        editor.logger.log_hyperparams(editor.dashboard_hparams(), metrics)


def write_predictions(editor: LightningModule) -> Path | None:
    """Write the predict run's per-record rows to ``predictions.jsonl`` and print where (rank 0 only)."""
    rows = _gather(editor._records)
    if not editor.trainer.is_global_zero or not rows:
        return None
    directory = run_dir(editor)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "predictions.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    succeeded = sum(int(r["es_edit"]) for r in rows)
    print(f"\n{len(rows)} records edited ({succeeded} with the target as argmax); wrote {path}\n")
    return path
