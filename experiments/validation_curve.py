"""The validation curve of one training run: a Markdown table and a PNG from its TensorBoard scalars.

Reads ``val/es``, ``val/es_edit``, ``val/es_equiv`` and ``val/acc_drawdown`` (whichever the run logged) at
every validation of a fit run (all its ``events.out.tfevents.*`` files, so a resumed run's curve continues)
and the run's ``fit.json`` (why it stopped, training and validation time).

    python experiments/validation_curve.py runs/smollm2_qa_long/version_0 \
        --out experiments/results/long_run_curve --command "bash experiments/long_run.sh"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mendlight.reporting import format_number, markdown_table

#: (tag, label) of the curves, in the table's column order.
CURVES: tuple[tuple[str, str], ...] = (
    ("val/es", "ES"),
    ("val/es_edit", "ES (edit)"),
    ("val/es_equiv", "ES (rephrase)"),
    ("val/acc_drawdown", "acc DD"),
)


def read_curves(runs: list[Path], tags: tuple[str, ...] | None = None) -> dict[str, dict[int, float]]:
    """``tag -> step -> value`` over the event files of ``runs`` (a later file wins at the same step).

    ``tags``: the scalars to read (default: those of :data:`CURVES`); tags a run never logged are left out.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, dict[int, float]] = {tag: {} for tag in tags or [tag for tag, _ in CURVES]}
    for run in runs:
        for events in sorted(run.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
            acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
            acc.Reload()
            for tag in curves:
                if tag in acc.Tags()["scalars"]:
                    curves[tag].update({e.step: e.value for e in acc.Scalars(tag)})
    return {tag: dict(sorted(points.items())) for tag, points in curves.items() if points}


def curve_markdown(curves: dict[str, dict[int, float]], fit: dict, title: str, command: str | None) -> str:
    """The table: one row per validation (step and each curve's value), then how the run ended."""
    steps = sorted({s for points in curves.values() for s in points})
    labels = [(tag, label) for tag, label in CURVES if tag in curves]
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Reproduce with `{command}`.", ""]
    body = [[str(s), *(format_number(curves[tag].get(s)) for tag, _ in labels)] for s in steps]
    lines += markdown_table(["step", *(label for _, label in labels)], body)
    if fit:
        share = fit.get("validation_share")
        lines += [
            "",
            f"Run ended: {fit.get('status')} ({fit.get('reason')}) at step {fit.get('global_step')}; "
            f"training {format_number((fit.get('train_time_s') or 0) / 60, 1.0)} min, validation "
            f"{format_number((fit.get('validation_time_s') or 0) / 60, 1.0)} min"
            + (f" ({100 * share:.0f}% of the run)" if share is not None else "")
            + f"; best checkpoint {fit.get('best_checkpoint')}.",
        ]
    return "\n".join(lines) + "\n"


def plot(curves: dict[str, dict[int, float]], path: Path, title: str) -> None:
    """Write the curves as a PNG: success rates on the left axis, accuracy drawdown on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for tag, label in CURVES:
        if tag in curves and tag != "val/acc_drawdown":
            ax.plot(list(curves[tag]), list(curves[tag].values()), marker="o", ms=3, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("edit success (validation)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if "val/acc_drawdown" in curves:
        dd = ax.twinx()
        points = curves["val/acc_drawdown"]
        (line,) = dd.plot(list(points), list(points.values()), color="black", ls="--", label="acc DD")
        dd.set_ylabel("accuracy drawdown")
        handles.append(line)
        labels.append("acc DD (right)")
    ax.legend(handles, labels, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Write ``OUT.md``, ``OUT.json`` and ``OUT.png`` for the given run directories."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="fit run directories (a resumed run's too)")
    parser.add_argument("--out", type=Path, required=True, help="output stem (OUT.md, OUT.json, OUT.png)")
    parser.add_argument("--title", default="Validation curve")
    parser.add_argument("--command", default=None, help="the command that reproduces the run (shown)")
    args = parser.parse_args(argv)
    missing = [str(r) for r in args.runs if not r.is_dir()]
    if missing:
        parser.error(f"no such run directory: {', '.join(missing)}")
    curves = read_curves(args.runs)
    if not curves:
        parser.error(f"no validation scalars (val/es...) in {', '.join(map(str, args.runs))}")
    fit_path = args.runs[-1] / "fit.json"
    fit = json.loads(fit_path.read_text()) if fit_path.is_file() else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(curve_markdown(curves, fit, args.title, args.command))
    payload = {"runs": [str(r) for r in args.runs], "fit": fit, "curves": curves}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(curves, args.out.with_suffix(".png"), args.title)
    print(f"wrote {args.out}.md, .json and .png ({len(next(iter(curves.values())))} validations)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
