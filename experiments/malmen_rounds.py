"""MALMEN's edit rounds on the validation split: ES, rephrase ES, drawdown and edit time for R = 1, 2, 3...

``edit_rounds: R`` repeats MALMEN's solve R times at test time, each round on the model the earlier ones made
(docs/algorithm.md §11.5). This script picks R where it should be picked, on the validation split: for each R
it runs

    mendlight validate -c RUN/config.yaml --ckpt_path RUN/checkpoints/best-*.ckpt \
        --model.init_args.edit_rounds R --data.init_args.eval_n_edits K --trainer.limit_val_batches B \
        --trainer.precision 32-true

(the same validation records for every R: B batches of K simultaneous edits) and reads the validation
metrics from the run directory it writes (``RUN/tests/version_N``). The test split stays for the tables.

Usage:
    python experiments/malmen_rounds.py RUN [--rounds 1 2 3] [--k 125] [--batches 2] [--out OUT]

Writes ``OUT.md`` and ``OUT.json`` (with the command, commit, date and machine) when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from mendlight.reporting import format_number, machine_info, markdown_table

#: (tag, column) of the table, in order.
METRICS: tuple[tuple[str, str], ...] = (
    ("val/es", "ES"),
    ("val/es_edit", "ES (edit)"),
    ("val/es_equiv", "ES (rephrase)"),
    ("val/acc_drawdown", "acc DD"),
    ("val/ppl_drawdown", "ppl DD"),
    ("val/edit_latency_s", "s per edit call"),
)


def best_checkpoint(run: Path) -> Path:
    """The run's best checkpoint (the newest ``best-*.ckpt``), else its ``last.ckpt``."""
    best = sorted((run / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    checkpoint = best[-1] if best else run / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise SystemExit(f"malmen_rounds: error: {run} holds no checkpoint (best-*.ckpt or last.ckpt)")
    return checkpoint


def validate_command(run: Path, checkpoint: Path, rounds: int, k: int, batches: int) -> list[str]:
    """The ``mendlight validate`` command line of one R."""
    mendlight = Path(sys.executable).with_name("mendlight")
    return [
        str(mendlight),
        "validate",
        "-c",
        str(run / "config.yaml"),
        "--ckpt_path",
        str(checkpoint),
        "--model.init_args.edit_rounds",
        str(rounds),
        "--data.init_args.eval_n_edits",
        str(k),
        "--trainer.limit_val_batches",
        str(batches),
        "--trainer.precision",
        "32-true",
        "--trainer.enable_progress_bar",
        "false",
    ]


def run_dir_of(output: str) -> Path:
    """The run directory a ``mendlight`` command printed (its ``run: DIR`` line)."""
    found = re.findall(r"^run: (\S+)$", output, flags=re.MULTILINE)
    if not found:
        raise RuntimeError("mendlight validate printed no 'run: DIR' line:\n" + output[-2000:])
    return Path(found[-1])


def read_metrics(run: Path) -> dict[str, float]:
    """The last value of every validation metric of :data:`METRICS` in ``run``'s TensorBoard events."""
    curves = _validation_curve().read_curves([run], tuple(tag for tag, _ in METRICS))
    return {tag: points[max(points)] for tag, points in curves.items()}


def _validation_curve():
    """experiments/validation_curve.py, which reads a run's validation scalars (a script beside this one)."""
    path = Path(__file__).with_name("validation_curve.py")
    spec = importlib.util.spec_from_file_location("validation_curve", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rounds_markdown(rows: list[dict], title: str, command: str, info: dict) -> str:
    """The table: one row per R, then how it was made."""
    body = [[str(r["rounds"]), *(format_number(r["metrics"].get(tag)) for tag, _ in METRICS)] for r in rows]
    lines = [f"# {title}", "", *markdown_table(["edit rounds R", *(c for _, c in METRICS)], body), ""]
    lines += [
        f"Reproduce with `{command}`. Checkpoint: `{rows[0]['checkpoint']}`." if rows else "",
        f"Run on {info.get('platform')} ({info.get('cpu_count')} CPUs, torch {info.get('torch')}, "
        f"{info.get('device', 'cpu')}), commit {info.get('commit')}, {info.get('date')}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Validate the run's best checkpoint once per R and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a MALMEN fit run directory")
    parser.add_argument("--rounds", type=int, nargs="+", default=[1, 2, 3], help="the R to compare")
    parser.add_argument("--k", type=int, default=125, help="simultaneous edits per batch")
    parser.add_argument("--batches", type=int, default=2, help="validation batches of k edits")
    parser.add_argument("--out", type=Path, default=None, help="output stem (OUT.md, OUT.json)")
    args = parser.parse_args(argv)
    if not (args.run / "config.yaml").is_file():
        parser.error(f"{args.run} is not a fit run directory (no config.yaml)")
    if min(args.rounds) < 1 or args.k < 1 or args.batches < 1:
        parser.error("--rounds, --k and --batches must be at least 1")
    checkpoint = best_checkpoint(args.run)
    rows = []
    for rounds in args.rounds:
        command = validate_command(args.run, checkpoint, rounds, args.k, args.batches)
        print("==", shlex.join(command), flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
            raise SystemExit(f"malmen_rounds: error: mendlight validate failed (status {done.returncode})")
        run = run_dir_of(done.stdout + done.stderr)
        metrics = read_metrics(run)
        print(f"R = {rounds}: " + ", ".join(f"{c} {format_number(metrics.get(t))}" for t, c in METRICS))
        rows.append({"rounds": rounds, "checkpoint": str(checkpoint), "run": str(run), "metrics": metrics})
    info = {**machine_info(), "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    given = argv if argv is not None else sys.argv[1:]
    command = shlex.join(["python", "experiments/malmen_rounds.py", *given])
    title = f"MALMEN edit rounds, validation split, k = {args.k} ({args.batches} batches)"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(rounds_markdown(rows, title, command, info))
        payload = {"title": title, "command": command, "k": args.k, "batches": args.batches, "rows": rows}
        payload.update(info)
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
