"""What an evaluation reports for every editor and layout: the golden file ``eval_reference.json``.

Each case evaluates one batch (or a sequential chain, or a predict step) on a tiny random model and keeps
everything the evaluation hands on: the per-record rows of ``results.json`` (sample outputs included) and the
stage's metric values. The file was written by the code of commit 75248c0, whose evaluation built the full
logits of every row group (that of 033ac85 writes the same file); ``test_eval_scores.py`` checks the chunked
evaluation against it. Timings (edit latencies) are left out: they are never the same twice.

Regenerate (only on purpose, e.g. after a deliberate change of a number)::

    PYTHONPATH=src python -m tests.editors.eval_cases tests/fixtures/eval_reference.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from mendlight.data import EditDataModule, EditRecord, LocalityItem

LAYOUTS = {"gpt2": "causal", "t5-v1_1": "seq2seq", "bert": "classifier"}
KS = (1, 3)
TIMING_FIELDS = ("latency_s", "edit_latency_s")


def _editors() -> dict[str, Callable[[str], object]]:
    from mendlight.editors import ENN, FT, FTKL, KE, MALMEN, MEND, Cache

    common = dict(n_samples=2, sample_tokens=3)
    return {
        "MEND": lambda ref: MEND(base_model=ref, rank=4, edit_lr=0.05, **common),
        "MALMEN": lambda ref: MALMEN(base_model=ref, rank=4, edit_lr=0.05, **common),
        "FT": lambda ref: FT(base_model=ref, edit_lr=1e-2, ft_optimizer="adam", max_steps=4, **common),
        "FTKL": lambda ref: FTKL(base_model=ref, edit_lr=1e-2, ft_optimizer="adam", max_steps=4, **common),
        "ENN": lambda ref: ENN(base_model=ref, edit_lr=0.1, **common),
        "KE": lambda ref: KE(base_model=ref, hidden_dim=8, condition_dim=8, max_scale=5.0, **common),
        "Cache": lambda ref: Cache(base_model=ref, epsilon=0.5, **common),
    }


def records(kind: str, n: int, offset: int = 0) -> list[EditRecord]:
    """``n`` edit records of a layout: two rephrases, two locality items, an old target on some."""
    if kind == "classifier":
        return [
            EditRecord(
                prompt=f"Claim number {i} is right.",
                target_new="true" if i % 2 else "false",
                target_true=None if i % 3 == 2 else "false",
                rephrases=[f"It holds that claim {i} is right.", f"Claim {i}: right."],
                locality=[
                    LocalityItem(f"Another claim {i}.", "false"),
                    LocalityItem(f"Claim {i + 7}.", "true"),
                ],
                id=f"c{i}",
                task="classification",
            )
            for i in range(offset, offset + n)
        ]
    return [
        EditRecord(
            prompt=f"The capital of Country{i} is",
            target_new=f"City{'x' * (i % 3)}",
            target_true=None if i % 3 == 2 else "Old",
            rephrases=[f"Country{i}'s capital:", f"Capital city of Country{i}:"],
            locality=[
                LocalityItem(f"The sky over {i} is", "blue"),
                LocalityItem(f"Grass in {i} is", "green"),
            ],
            id=f"r{i}",
        )
        for i in range(offset, offset + n)
    ]


def setup(layout: str, editor_name: str, directory: Path, **hparams):
    """A seeded editor of ``layout`` with its data module (records written to ``directory``)."""
    from mendlight.data.records import write_records

    ref, kind = f"tiny-random-{layout}", LAYOUTS[layout]
    for split in ("train", "val", "test"):
        write_records(directory / f"{split}.jsonl", records(kind, 4))
    dm = EditDataModule(dataset=str(directory), tokenizer=ref, n_loc=2, max_length=48)
    dm.setup("test")
    torch.manual_seed(0)
    editor = _editors()[editor_name](ref)
    editor.attach_datamodule(dm)
    editor.log_dict = editor.log = lambda *a, **k: None
    if editor_name in ("MEND", "MALMEN"):  # fill their normalisation statistics, as training does
        editor.train()
        editor.edit(dm.make_batch(records(kind, 2, offset=10), train=True)["edit"])
    editor.eval()
    for key, value in hparams.items():
        editor.hparams[key] = value
    return editor, dm, kind


def _clean(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def _metrics(editor) -> dict[str, float]:
    values = editor.stage_metrics["test_metrics"].epoch_values()
    return {k: float(v) for k, v in values.items() if k not in TIMING_FIELDS}


def run_case(layout: str, editor_name: str, k: int, directory: Path, **hparams) -> dict:
    """One test batch of ``k`` edits: its per-record rows and the test metrics."""
    editor, dm, kind = setup(layout, editor_name, directory, **hparams)
    editor._records, editor._samples = [], []
    editor.test_step(dm.make_batch(records(kind, k), train=False), 0)
    return {"rows": _clean(editor._records), "metrics": _metrics(editor)}


def run_sequential(layout: str, editor_name: str, directory: Path, **hparams) -> dict:
    """A chain of two test batches (two and one edits) evaluated after the last edit."""
    editor, dm, kind = setup(layout, editor_name, directory, sequential=2, **hparams)
    editor.on_test_start()
    editor._samples = []
    for index, batch_records in enumerate((records(kind, 2), records(kind, 1, offset=2))):
        editor.test_step(dm.make_batch(batch_records, train=False), index)
    editor._chain.evaluate()
    return {"rows": _clean(editor._records), "metrics": _metrics(editor)}


def run_predict(layout: str, editor_name: str, directory: Path, **hparams) -> dict:
    """One predict step of two edits: its rows with greedy pre/post outputs."""
    editor, dm, kind = setup(layout, editor_name, directory, **hparams)
    rows = editor.predict_step(dm.make_batch(records(kind, 2), train=False), 0)
    return {"rows": _clean(rows)}


def case_names() -> list[str]:
    """Every case, as ``kind/layout/editor[/k]``."""
    names = [
        f"batch/{layout}/{editor}/{k}"
        for layout in LAYOUTS
        for editor in sorted(_editors())
        for k in KS
        if not (editor == "KE" and k > 1)
    ]
    names += [f"sequential/{layout}/{editor}" for layout in LAYOUTS for editor in ("FT", "ENN", "Cache")]
    names += [f"predict/{layout}/{editor}" for layout in LAYOUTS for editor in ("MEND", "Cache")]
    names += ["answer_kl/gpt2/MEND/3"]
    return names


def run(name: str, directory: Path, **hparams) -> dict:
    """The result of case ``name`` (see :func:`case_names`); ``hparams`` are set on the editor."""
    kind, layout, editor, *rest = name.split("/")
    if kind == "batch":
        return run_case(layout, editor, int(rest[0]), directory, **hparams)
    if kind == "answer_kl":
        return run_case(layout, editor, int(rest[0]), directory, loc_kl="answer", **hparams)
    if kind == "sequential":
        return run_sequential(layout, editor, directory, **hparams)
    return run_predict(layout, editor, directory, **hparams)


def main(path: str) -> None:
    """Write every case's result to ``path`` (JSON)."""
    import tempfile

    out = {}
    for name in case_names():
        with tempfile.TemporaryDirectory() as tmp:
            out[name] = run(name, Path(tmp))
        print(name, file=sys.stderr)
    Path(path).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
