"""Peak memory of one evaluation of k simultaneous edits (issue #14): edit, scoring passes, metrics, rows.

For each k of --ks, one test batch of the first k test records of --dataset is evaluated as ``mendlight test``
evaluates it (``Editor.test_step``: the timed edit, the pre- and post-edit passes over the edit, rephrase,
locality and true rows, the metric updates and the per-record rows). Reported: the peak of the bytes held by
the tensors the evaluation creates (:class:`mendlight.profiling.TensorPeakMemory`; the model's weights and the
batch's inputs are not counted), on CUDA also ``torch.cuda.max_memory_allocated`` (weights included), and
the batch's rows and token positions. The editor is freshly initialised (MEND with small editor networks by
default, its statistics filled by training-mode edits): memory does not depend on training.

Usage: python experiments/eval_memory.py [--base-model smollm2-135m] [--dataset facts-qa] [--ks 16 64]
    [--editor MEND] [--eval-chunk 32] [--lm-chunk 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from mendlight.data.batch import batch_to
from mendlight.data.module import EditDataModule
from mendlight.editors import ENN, FT, MALMEN, MEND
from mendlight.profiling import TensorPeakMemory

EDITORS = {
    "MEND": lambda base: MEND(base_model=base, rank=16, n_samples=0),
    "MALMEN": lambda base: MALMEN(base_model=base, rank=16, n_samples=0),
    "FT": lambda base: FT(base_model=base, max_steps=1, n_samples=0),
    "ENN": lambda base: ENN(base_model=base, n_samples=0),
}


def measure(editor, batch: dict) -> dict:
    """Peak bytes and seconds of one evaluated test batch."""
    groups = [batch[g] for g in ("edit", "equiv", "loc", "true") if g in batch]
    rows = sum(int(g["input_ids"].shape[0]) for g in groups)
    positions = sum(int(g["labels"].numel()) for g in groups)
    cuda = torch.cuda.is_available() and editor.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.no_grad(), TensorPeakMemory() as memory:  # as Lightning's test loop runs it
        editor.test_step(batch, 0)
    if cuda:
        torch.cuda.synchronize()
    return {
        "rows": rows,
        "positions": positions,
        "peak_mib": memory.peak / 2**20,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base-model", default="smollm2-135m")
    parser.add_argument("--dataset", default="facts-qa")
    parser.add_argument("--editor", default="MEND", choices=sorted(EDITORS))
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--eval-chunk", type=int, default=32, help="rows per scoring pass (0: all at once)")
    parser.add_argument("--lm-chunk", type=int, default=32, help="edit rows per pass of the edit")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    dm = EditDataModule(
        dataset=args.dataset, tokenizer=args.base_model, n_loc=1, max_eval_records=max(args.ks)
    )
    dm.setup("test")
    records = dm.records("test")
    torch.manual_seed(0)
    editor = EDITORS[args.editor](args.base_model).to(args.device)
    editor.log_dict = editor.log = lambda *a, **k: None
    if args.editor in ("MEND", "MALMEN"):
        editor.train()
        editor.edit(batch_to(dm.make_batch(records[:16], train=True), args.device)["edit"])
    editor.eval()
    editor.hparams.eval_chunk = args.eval_chunk or None
    editor.hparams.lm_chunk = args.lm_chunk
    print(
        f"| {args.editor} on {args.base_model} | k | rows | positions | peak tensor MiB | CUDA peak MiB | s |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in args.ks:
        batch = batch_to(dm.make_batch(records[:k], train=False), args.device)
        r = measure(editor, batch)
        cuda = f"{r['cuda_peak_mib']:.0f}" if r["cuda_peak_mib"] is not None else "-"
        print(
            f"| eval_chunk {args.eval_chunk} | {k} | {r['rows']} | {r['positions']} | {r['peak_mib']:.1f} | "
            f"{cuda} | {r['seconds']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
