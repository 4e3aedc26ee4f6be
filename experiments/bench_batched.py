"""Benchmark of batched editing on the real SmolLM2: one k-edit call against k single edits, MEND and MALMEN.

Reported, not asserted (issue #14 item 5). For k in --ks (default 1, 125, 1000) and each editor:

* the time of one call editing k facts at once (``editor.edit`` on k rows: the language-model passes, the
  editor networks, and for MALMEN the least-squares solve; the median of 3 calls up to k = 125, one call
  above), and its peak memory: the bytes of the tensors
  created by the call (:class:`mendlight.profiling.TensorPeakMemory`, measured in a second, untimed run;
  on CUDA also ``torch.cuda.max_memory_allocated``);
* the time of the same k facts edited one after another (k calls of one edit each). Only the first
  ``--singles`` of them are timed; beyond that the total is their mean times k, marked "extrapolated".

The floor of one k-edit call is one forward and backward pass over its k rows (the edit's gradient), which
both editors need; the table gives each call's ratio to it. The facts are the first k test records of the
embedded question-answering set (facts-qa, real facts). The editors are freshly initialised with their
normalisation statistics filled by training-mode edits: their cost does not depend on training. MEND runs
with ``lm_chunk`` 32 above k = 32, as MALMEN does (its default), so neither holds more than 32 rows'
activations at once.

Usage: python experiments/bench_batched.py [--ks 1 125 1000] [--singles 25] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import torch
from pytorch_lightning.utilities import move_data_to_device

from mendlight.data.module import EditDataModule
from mendlight.editors import MALMEN, MEND
from mendlight.profiling import TensorPeakMemory
from mendlight.reporting import machine_info

CHUNK = 32  # language-model rows per pass, both editors


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _rows(rows: dict, start: int, end: int) -> dict:
    return {key: value[start:end] for key, value in rows.items()}


def _floor(editor, rows: dict) -> float:
    """One forward+backward of the edit loss over all k rows, ``CHUNK`` rows at a time (as the edits run)."""

    def run() -> None:
        for start in range(0, int(rows["input_ids"].shape[0]), CHUNK):
            editor.capture_edit_factors(_rows(rows, start, start + CHUNK)).clear()

    return _seconds(run)


def _peak_bytes(fn) -> tuple[int, int | None]:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with TensorPeakMemory() as memory:
        fn()
    return memory.peak, (torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None)


def bench_editor(editor, dm: EditDataModule, records: list, ks: list[int], singles: int) -> list[dict]:
    """Time and memory of one k-edit call and of k single edits, for every k."""
    editor.train()
    for start in range(0, min(64, len(records)), 16):  # fill the normalisation statistics as in training
        editor.edit(
            move_data_to_device(
                dm.make_batch(records[start : start + 16], train=False)["edit"], editor.device
            )
        )
    editor.eval()
    out = []
    for k in ks:
        rows = move_data_to_device(dm.make_batch(records[:k], train=False)["edit"], editor.device)
        editor.hparams.lm_chunk = CHUNK  # MEND chunks above CHUNK rows only; MALMEN always

        def call(rows=rows) -> None:
            with torch.no_grad():
                editor.edit(rows)

        call()  # warm-up
        seconds = statistics.median(_seconds(call) for _ in range(3 if k <= 125 else 1))
        peak, cuda_peak = _peak_bytes(call)
        n_single = min(k, singles)
        single = [_seconds(lambda i=i, rows=rows: call(_rows(rows, i, i + 1))) for i in range(n_single)]
        one_by_one = statistics.fmean(single) * k
        out.append(
            {
                "editor": type(editor).__name__,
                "k": k,
                "tokens": int(rows["attention_mask"].sum()),
                "call_s": seconds,
                "floor_s": _floor(editor, rows),
                "peak_mb": peak / 2**20,
                "cuda_peak_mb": cuda_peak / 2**20 if cuda_peak is not None else None,
                "singles_s": one_by_one,
                "singles_extrapolated": n_single < k,
            }
        )
        print(out[-1], flush=True)
    return out


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    device = f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    lines = [
        f"# Batched editing on {args.base_model}: one k-edit call against k single edits",
        "",
        f"- command: `python experiments/bench_batched.py --ks {' '.join(map(str, args.ks))} "
        f"--singles {args.singles} --rank {args.rank}`",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; commit {machine_info()['commit']}",
        f"- editors freshly initialised (rank {args.rank}); {CHUNK} language-model rows per pass; facts: the "
        f"first k test records of {args.dataset}",
        "",
        "| editor | k | tokens | one k-edit call (s) | floor: fwd+bwd (s) | × floor | k single edits (s) "
        "| speed-up | peak tensor memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        singles = f"{r['singles_s']:.1f}" + (" (extrapolated)" if r["singles_extrapolated"] else "")
        memory = f"{r['peak_mb']:.2f}" + (f" (CUDA {r['cuda_peak_mb']:.0f})" if r["cuda_peak_mb"] else "")
        lines.append(
            f"| {r['editor']} | {r['k']} | {r['tokens']} | {r['call_s']:.2f} | {r['floor_s']:.2f} | "
            f"{r['call_s'] / r['floor_s']:.2f} | {singles} | {r['singles_s'] / r['call_s']:.1f}× | {memory} |"
        )
    lines += [
        "",
        "Peak tensor memory counts the tensors the call creates (not the model's weights or the inputs).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 125, 1000], help="edits per call")
    parser.add_argument("--singles", type=int, default=25, help="single edits timed per k (the rest scaled)")
    parser.add_argument("--rank", type=int, default=1920, help="editor network rank (the paper's 1920)")
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    parser.add_argument("--base_model", default="smollm2-135m", help="the edited model (default SmolLM2)")
    parser.add_argument("--dataset", default="facts-qa", help="where the facts come from (its test split)")
    args = parser.parse_args(argv)
    dm = EditDataModule(dataset=args.dataset, tokenizer=args.base_model, n_loc=1)
    dm.setup("test")
    records = dm.records("test")
    if len(records) < max(args.ks):
        parser.error(f"--ks: the test split holds {len(records)} records, fewer than {max(args.ks)}")
    results = []
    for cls in (MEND, MALMEN):
        torch.manual_seed(0)
        editor = cls(base_model=args.base_model, rank=args.rank)
        if torch.cuda.is_available():
            editor = editor.cuda()
        results += bench_editor(editor, dm, records, args.ks, args.singles)
        del editor
    text = markdown(results, args)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
