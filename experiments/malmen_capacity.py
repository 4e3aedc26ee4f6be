"""How much of its value shifts MALMEN's least-squares update can reach, as the number of edits k grows.

MALMEN's update of one edited weight is the ridge solution ``ΔW = (KᵀK + e^λ I)⁻¹ KᵀV`` for the keys ``K``
(the weight's inputs at the answer tokens of all k edits, one row per token) and the value shifts ``V`` (what
each edit alone asks of the weight's output at its key). Once a weight holds more keys than its input has
dimensions (``n > key_size``), ``KΔW = V`` has no exact solution in general: the solve can only compromise.
This script measures, for a trained MALMEN on one test batch per k, every edited weight's key count and the
part of the value shifts its update reaches, ``1 − ‖KΔW − V‖ / ‖V‖`` ("reached"), and the same without the
regulariser's pull (``λ → -30``, "reachable at λ → -∞": the least-squares limit, what the keys' geometry
allows). The editor's trained λ and η are used as they are.

Usage:
    python experiments/malmen_capacity.py RUN_OR_CKPT [--ks 25 125 500 1000] [--out experiments/results/X]

Writes ``OUT.md`` and ``OUT.json`` (with the command, commit, date and machine) when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch

from mendlight import load_editor
from mendlight.data.module import EditDataModule
from mendlight.nn.least_squares import ridge_update
from mendlight.reporting import write_measurement


def reach(keys: torch.Tensor, values: torch.Tensor, log_lambda: torch.Tensor, chunk: int) -> float:
    """``1 − ‖KΔW − V‖_F / ‖V‖_F`` for the ridge update of ``keys`` and ``values`` at ``log_lambda``."""
    update = ridge_update(keys, lambda s, e: values[s:e], values.shape[1], log_lambda, [], chunk)
    residual = torch.linalg.matrix_norm(keys @ update - values) / torch.linalg.matrix_norm(values)
    return 1.0 - float(residual)


def measure(source: str, ks: list[int]) -> list[dict]:
    """One row per (k, edited weight): key count, key size, reached and reachable share of ``V``."""
    module = load_editor(source).editor.float()
    chunk = int(module.hparams.editor_chunk)
    rows = []
    for k in ks:
        data = EditDataModule(dataset="facts-qa", eval_n_edits=k, max_eval_records=k, n_loc=1, max_length=64)
        data.prepare_data()
        data.setup("test")
        batch = next(iter(data.test_dataloader()))
        factors = module.key_factors(batch["edit"])
        for index, name in enumerate(module.edit_names):
            keys, grads = factors.pop(name)
            with torch.no_grad():
                values = module.value_chunks(name, keys, grads)(0, keys.shape[0])
                trained = module.log_lambda[index].detach()
                rows.append(
                    {
                        "k": k,
                        "weight": name,
                        "keys": int(keys.shape[0]),
                        "key_size": int(keys.shape[1]),
                        "lambda": float(trained.exp()),
                        "reached": reach(keys, values, trained, chunk),
                        "reachable": reach(keys, values, torch.tensor(-30.0), chunk),
                    }
                )
            print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """A markdown table: one line per k and weight kind (the mean over the edited blocks)."""
    lines = [
        "| k | weight | keys | key size | e^λ (trained) | share of V reached | reachable (λ → -∞) |",
        "|---|---|---|---|---|---|---|",
    ]
    kinds: dict[tuple[int, str], list[dict]] = {}
    for row in rows:
        kinds.setdefault((row["k"], row["weight"].rsplit(".", 2)[-2]), []).append(row)
    for (k, kind), group in kinds.items():
        mean = {f: sum(r[f] for r in group) / len(group) for f in ("keys", "lambda", "reached", "reachable")}
        lines.append(
            f"| {k} | {kind} (×{len(group)}) | {mean['keys']:.0f} | {group[0]['key_size']} "
            f"| {mean['lambda']:.3g} | {mean['reached']:.3f} | {mean['reachable']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the command line, measure and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a MALMEN run directory or checkpoint")
    parser.add_argument("--ks", type=int, nargs="+", default=[25, 125, 500, 1000])
    parser.add_argument("--out", help="path prefix of OUT.md and OUT.json")
    args = parser.parse_args()
    rows = measure(args.source, args.ks)
    text = table(rows)
    print(text)
    if args.out:
        title = "MALMEN: the share of its value shifts an update reaches"
        write_measurement(args.out, title, shlex.join(["python", *sys.argv]), text, rows)


if __name__ == "__main__":
    main()
