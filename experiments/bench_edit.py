"""Benchmark on the real SmolLM2: one MEND edit vs one forward+backward, FT's edit, a training step, memory.

Reported, not asserted. Usage: python experiments/bench_edit.py [--out FILE.md] [--repeats N]
The MEND editor is freshly initialised (its timing does not depend on training); its normalisation statistics
are filled by a few training-mode edits first, as after `mendlight fit`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import time

import torch
from torch.func import functional_call

from mendlight.data.module import EditDataModule
from mendlight.data.records import EditRecord, LocalityItem
from mendlight.editors import FT, MEND
from mendlight.losses import masked_nll
from mendlight.reporting import machine_info


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rank", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    mend = MEND(base_model="smollm2-135m", rank=args.rank)
    dm = EditDataModule(tokenizer="smollm2-135m")
    record = EditRecord(
        prompt="The capital of France is",
        target_new="Rome",
        target_true="Paris",
        rephrases=["France's capital city is"],
        locality=[LocalityItem("The currency of Japan is the", "Yen")],
    )
    batch = dm.make_batch([record], train=True)
    edit = batch["edit"]
    base = mend.base
    names = mend.edit_names

    def fwd_bwd() -> None:  # the floor: forward + backward over the edited weights only
        leaves = {n: base.get_parameter(n).detach().requires_grad_(True) for n in names}
        logits = functional_call(
            base, leaves, kwargs={"input_ids": edit["input_ids"], "attention_mask": edit["attention_mask"]}
        ).logits
        torch.autograd.grad(masked_nll(logits, edit["labels"]), list(leaves.values()))

    mend.train()
    for _ in range(3):
        mend.edit(edit)  # fill the normalisation statistics
    mend.eval()

    def mend_edit() -> None:
        with torch.no_grad():
            mend.edit(edit)

    ft = FT(base_model="smollm2-135m", edit_lr=1e-4, ft_optimizer="adam", max_steps=100)
    ft.eval()
    ft_steps = []

    def ft_edit() -> None:
        ft.edit(edit)
        ft_steps.append(ft.last_steps)

    mend.train()
    opt = torch.optim.Adam(mend.trainable_parameters(), lr=1e-5)

    def train_step() -> None:
        loss = mend.training_step(batch, 0)
        loss.backward()
        opt.step()
        opt.zero_grad()

    mend.log_dict = lambda *a, **k: None  # outside a Trainer
    mend.log = lambda *a, **k: None
    results = {
        "forward+backward over the edited weights (floor)": timed(fwd_bwd, args.repeats),
        "one MEND edit": timed(mend_edit, args.repeats),
        "one FT edit (until argmax, ≤100 steps)": timed(ft_edit, args.repeats),
        "one MEND training step (edit + loss + backward + Adam)": timed(train_step, args.repeats),
    }
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    floor = results["forward+backward over the edited weights (floor)"][0]
    lines = [
        "# Edit-speed benchmark on SmolLM2-135M (CPU)",
        "",
        f"- command: `python experiments/bench_edit.py --repeats {args.repeats} --rank {args.rank}`",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; commit {machine_info()['commit']}",
        f"- edit batch: 1 edit, {int(edit['attention_mask'].sum())} tokens; {len(names)} edited weights "
        f"(last 3 blocks' gate/up/down), MEND rank {args.rank}",
        "",
        "| measurement | median (s) | min (s) | × floor |",
        "|---|---|---|---|",
    ]
    for name, (median, best) in results.items():
        lines.append(f"| {name} | {median:.3f} | {best:.3f} | {median / floor:.2f} |")
    lines += [
        "",
        f"FT steps per edit: {ft_steps}",
        f"Peak resident memory of the process: {peak_mb:.0f} MB",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
