"""Are a trained MALMEN's regulariser λ and step size η still the right ones at a larger k? (validation)

MALMEN learns one log-regulariser λ and one step size η per edited weight, at the k it is trained with. The
update ``ΔW = η·(KᵀK + e^λ I)⁻¹ KᵀV`` moves from the least-squares fit of the keys (small e^λ) towards
MEND's scaled sum (large e^λ), and η scales it as a whole; with more edits in a call, a stronger pull
towards the sum or a different scale could in principle suit the crowded keys better. This script edits
validation batches of k records with the trained editor and with λ shifted and η multiplied
(``--settings SHIFT:FACTOR ...``, ``0:1`` being the editor as trained) and reports ES, ES on the prompts and
on the rephrases, and accuracy drawdown for each. The editor is restored after every setting; the batches
are those ``mendlight validate --data.init_args.eval_n_edits K`` draws (the data module's seed).

Usage:
    python experiments/malmen_step_sweep.py RUN_OR_CKPT --k 125 [--batches 2] [--settings 0:1 -2:1 3:1]
        [--out experiments/results/X]

Writes ``OUT.md`` and ``OUT.json`` (with the command, commit, date and machine) when ``--out`` is given.
Validation records only: what is tuned here must not be chosen on the test split.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice

import torch
from pytorch_lightning.utilities import move_data_to_device

from mendlight import load_editor
from mendlight.data.module import EditDataModule
from mendlight.editors.evaluation import record_rows
from mendlight.reporting import summarise, write_measurement


def parse_setting(text: str) -> tuple[float, float]:
    """``"SHIFT:FACTOR"`` → (added to every log λ, multiplying every η); refuses anything else."""
    shift, sep, factor = text.partition(":")
    try:
        pair = (float(shift), float(factor))
    except ValueError:
        pair = None
    if not sep or pair is None or not all(map(math.isfinite, pair)) or pair[1] <= 0:
        raise argparse.ArgumentTypeError(
            f"setting {text!r}: give SHIFT:FACTOR, a finite shift of log λ and a positive η factor (e.g. 0:1)"
        )
    return pair


@contextmanager
def shifted(editor: torch.nn.Module, shift: float, factor: float) -> Iterator[None]:
    """The editor with ``shift`` added to its log-regularisers and its step sizes times ``factor``."""
    saved = editor.log_lambda.detach().clone(), editor.alpha.detach().clone()
    with torch.no_grad():
        editor.log_lambda.add_(shift)
        editor.alpha.mul_(factor)
    try:
        yield
    finally:
        with torch.no_grad():
            editor.log_lambda.copy_(saved[0])
            editor.alpha.copy_(saved[1])


def _data_module(editor: torch.nn.Module, data_hparams: dict, k: int) -> EditDataModule:
    """The run's data module with ``k`` edits per evaluation batch: its validation batches are the ones
    ``mendlight validate --data.init_args.eval_n_edits K`` draws."""
    options = {
        key: data_hparams[key] for key in ("dataset", "n_loc", "max_length", "seed") if key in data_hparams
    }
    data = EditDataModule(tokenizer=editor.hparams.base_model, eval_n_edits=k, **options)
    data.prepare_data()
    data.setup("fit")
    return data


def sweep(
    source: str, k: int, batches: int, settings: list[tuple[float, float]], prior: str | None = None
) -> list[dict]:
    """One row per setting: its shift and factor, the resulting λ and η ranges, and the edits' summary."""
    model_editor = load_editor(source, **({"prior": prior} if prior else {}))
    editor = model_editor.editor
    if not hasattr(editor, "log_lambda"):
        raise SystemExit(f"{source}: a {type(editor).__name__} editor has no λ to sweep; give a MALMEN run")
    data = _data_module(editor, model_editor.trained_data_options, k)
    loaded = list(islice(iter(data.val_dataloader()), batches))
    editor.attach_datamodule(data)  # MALMEN's keys prior reads the training edits of the run's data
    rows = []
    for shift, factor in settings:
        with shifted(editor, shift, factor):
            lam = editor.log_lambda.detach().exp()
            eta = editor.alpha.detach().clone()
            records: list[dict] = []
            for batch in loaded:
                batch = move_data_to_device(batch, editor.device)
                records += record_rows(batch, editor.evaluate_batch(batch))
        summary = summarise(records)
        rows.append(
            {
                "shift": shift,
                "factor": factor,
                "lambda_min": float(lam.min()),
                "lambda_max": float(lam.max()),
                "eta_min": float(eta.min()),
                "eta_max": float(eta.max()),
                **{key: summary[key] for key in ("n_records", "es", "es_edit", "es_equiv", "acc_drawdown")},
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict) -> str:
    return (
        f"| {row['shift']:+g} | ×{row['factor']:g} | {row['lambda_min']:.3g}–{row['lambda_max']:.3g} | "
        f"{row['eta_min']:.2g}–{row['eta_max']:.2g} | {row['es']:.3f} | {row['es_edit']:.3f} | "
        f"{row['es_equiv']:.3f} | {row['acc_drawdown']:.3f} |"
    )


def table(rows: list[dict], k: int) -> str:
    """The Markdown table of a sweep."""
    head = (
        f"Validation, {rows[0]['n_records']} edits in calls of k = {k}.\n\n"
        "| log λ shift | η factor | e^λ | η | ES | ES (prompt) | ES (rephrase) | acc drawdown |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(_line(row) for row in rows)


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a MALMEN run directory or checkpoint")
    parser.add_argument("--k", type=int, default=125, help="edits per call")
    parser.add_argument("--batches", type=int, default=2, help="validation batches of k edits")
    parser.add_argument(
        "--settings",
        type=parse_setting,
        nargs="+",
        default=[(0.0, 1.0)],
        help="SHIFT:FACTOR pairs: added to every log λ, multiplying every η (0:1 is the editor as trained)",
    )
    # a negative shift ("-2:1") is a value, not an option
    parser._negative_number_matcher = re.compile(r"^-\d[\d.eE+-]*(:[\d.eE+-]+)?$")
    parser.add_argument(
        "--prior", choices=("identity", "keys"), help="MALMEN's prior option (default: the run's)"
    )
    parser.add_argument("--out", help="write OUT.md and OUT.json")
    args = parser.parse_args(argv)
    if args.k < 1 or args.batches < 1:
        parser.error("--k and --batches must be at least 1")
    rows = sweep(args.source, args.k, args.batches, args.settings, args.prior)
    text = table(rows, args.k)
    print(text)
    if args.out:
        command = "python experiments/malmen_step_sweep.py " + shlex.join(
            sys.argv[1:] if argv is None else argv
        )
        write_measurement(args.out, "MALMEN's λ and η at a larger k (validation)", command, text, rows)


if __name__ == "__main__":
    main()
