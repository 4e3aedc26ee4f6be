"""Benchmark MEND training on the real SmolLM2: edits trained per second, the step against its floor, memory.

Reported, not asserted. Usage: python experiments/bench_train.py [--out FILE.md] [--steps N] [--ks 1 4 10]
[--precisions 32-true bf16-mixed]

A training step of k independent edits (``independent_edits``; k = 1 is the plain single-edit step) on real
``facts-qa`` batches (one rephrase and 2 locality rows per edit): edit pass, post-edit pass, losses, backward,
Adam. Its floor is the frozen bottom pass (the 27 blocks below the edited ones, once over every row of the
step), which no step can skip; the table gives the step's time and FLOPs against it. One validation edit
(the editor's ``validation_step``, with its share of the sample table) is timed too. The script runs on older
commits as well (without ``independent_edits`` it measures k = 1), which is how the "before" rows were made.

``bf16-mixed`` runs the step under ``torch.autocast`` in bfloat16, as ``--trainer.precision bf16-mixed`` does
(weights, optimizer and editor state stay float32); its floor is the same bottom pass under autocast. The
table gives each row's own floor and the float32 floor of the same rows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import resource
import statistics
import time

import torch
from pytorch_lightning.utilities import move_data_to_device
from torch.utils.flop_counter import FlopCounterMode

from mendlight.data.module import EditDataModule
from mendlight.editors import MEND
from mendlight.editors.rows import RowStack
from mendlight.reporting import machine_info


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 10])
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["32-true"],
        choices=["32-true", "bf16-mixed"],
        help="Lightning precisions to time the step in (bf16-mixed: under bfloat16 autocast)",
    )
    parser.add_argument("--label", default="")
    parser.add_argument("--dataset", default="facts-qa", help="embedded dataset or a records directory")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu or cuda (default: cuda if there is one)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = EditDataModule(dataset=args.dataset, tokenizer="smollm2-135m", n_loc=2, max_length=64)
    data.setup("fit")
    records = data.records("train")
    rows = []
    floor32: dict[int, float] = {}
    for precision in args.precisions:
        autocast = precision == "bf16-mixed"

        def amp(autocast=autocast):
            if autocast:
                return torch.autocast(device.type, dtype=torch.bfloat16)
            return contextlib.nullcontext()

        for k in args.ks:
            try:
                mend = MEND(base_model="smollm2-135m", rank=256, lr_lr=1e-5, independent_edits=k > 1)
            except TypeError:  # a commit without independent_edits
                if k > 1:
                    continue
                mend = MEND(base_model="smollm2-135m", rank=256, lr_lr=1e-5)
            mend.log_dict = mend.log = lambda *a, **kw: None  # outside a Trainer
            mend = mend.to(device)
            opt = torch.optim.Adam([p for p in mend.parameters() if p.requires_grad], lr=1e-4)

            def step(batch, mend=mend, opt=opt, amp=amp) -> None:
                with amp():  # as Lightning's precision plugin: the step under autocast, backward outside
                    loss = mend.training_step(batch, 0)
                loss.backward()
                opt.step()
                opt.zero_grad()
                mend.on_train_batch_end(None, batch, 0)

            def bottom(groups, mend=mend, amp=amp) -> None:
                with amp():
                    RowStack(mend, groups)  # the bottom pass alone

            chunks = [records[i * k : (i + 1) * k] for i in range(args.steps + 2)]
            batches = [move_data_to_device(data.make_batch(chunk, train=True), device) for chunk in chunks]
            for batch in batches[:2]:
                step(batch)  # warm-up; fills the normalisation statistics
            times, floors, floors32 = [], [], []
            for batch in batches[2:]:
                groups = {"edit": batch["edit"], "equiv": batch["equiv"], "loc": batch["loc"]}
                _sync()
                start = time.perf_counter()
                step(batch)
                _sync()
                times.append(time.perf_counter() - start)
                start = time.perf_counter()
                bottom(groups)
                _sync()
                floors.append(time.perf_counter() - start)
                if autocast and k not in floor32:  # a float32 row's own floor is the float32 floor
                    start = time.perf_counter()
                    RowStack(mend, groups)
                    _sync()
                    floors32.append(time.perf_counter() - start)
            if not autocast:
                floor32[k] = statistics.median(floors)
            elif floors32:
                floor32[k] = statistics.median(floors32)
            batch = batches[2]
            groups = {"edit": batch["edit"], "equiv": batch["equiv"], "loc": batch["loc"]}
            step_flops = _flops(lambda batch=batch, step=step: step(batch))
            floor_flops = _flops(lambda groups=groups, mend=mend: RowStack(mend, groups))
            median, floor = statistics.median(times), statistics.median(floors)
            rows.append((precision, k, median, k / median, floor, floor32[k], step_flops, floor_flops))
            print(
                f"{precision} k={k}: {median:.3f} s/step, {k / median:.2f} edits/s, floor {floor:.3f} s "
                f"(float32 floor {floor32[k]:.3f} s)",
                flush=True,
            )
            del mend, opt, batches

    # one validation edit, as validation runs it (the first n_samples records also decode sample outputs)
    mend = MEND(base_model="smollm2-135m", rank=256, lr_lr=1e-5).to(device)
    mend.log_dict = mend.log = lambda *a, **kw: None
    mend.train()
    for i in range(3):
        mend.edit(move_data_to_device(data.make_batch([records[i]], train=True)["edit"], device))
    mend.eval()
    val = [move_data_to_device(data.make_batch([r], train=False), device) for r in data.records("val")[:20]]
    mend.on_validation_epoch_start()
    _sync()
    start = time.perf_counter()
    for i, batch in enumerate(val):
        mend.validation_step(batch, i)
    _sync()
    per_val_edit = (time.perf_counter() - start) / len(val)

    ks = " ".join(map(str, args.ks))
    precisions = " ".join(args.precisions)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda = f"{torch.cuda.get_device_name(0)}, " if device.type == "cuda" else ""
    lines = [
        f"## Training throughput{(' — ' + args.label) if args.label else ''}",
        "",
        f"- command: `python experiments/bench_train.py --steps {args.steps} --ks {ks}"
        + (f" --precisions {precisions}" if args.precisions != ["32-true"] else "")
        + (f" --dataset {args.dataset}" if args.dataset != "facts-qa" else "")
        + (f" --device {args.device}`" if device.type != "cpu" else "`"),
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, {cuda}torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; commit {machine_info()['commit']}",
        f"- data: `{args.dataset}` training records, one rephrase and 2 locality rows per edit; rank 256",
        "",
        "| precision | edits per step | s / step | edits / s | bottom-pass floor (s) | × floor (time) "
        "| float32 floor (s) | × float32 floor | GFLOP / step | × floor (FLOPs) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for precision, k, median, rate, floor, floor_f32, flops, floor_flops in rows:
        lines.append(
            f"| {precision} | {k} | {median:.3f} | {rate:.2f} | {floor:.3f} | {median / floor:.1f} "
            f"| {floor_f32:.3f} | {median / floor_f32:.1f} | {flops / 1e9:.1f} "
            f"| {flops / max(floor_flops, 1):.1f} |"
        )
    lines += [
        "",
        f"One validation edit (20 edits, of which the first 8 also decode the sample table): "
        f"{per_val_edit:.3f} s per edit.",
        f"Peak resident memory of the process: {peak_mb:.0f} MB."
        + (f" Peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB." if cuda else ""),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
