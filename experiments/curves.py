"""Turn `mendlight table` outputs (one per x value) into a curve: a Markdown table, a PNG, TensorBoard.

Each input is the OUT.json of `mendlight table`; its title carries the x value after a marker
(``--x-from-title "k = "`` reads 25 from "... k = 25 simultaneous edits"). For every editor row the edit
success (ES, ES on rephrases) and the table's drawdown are collected per x.

    python experiments/curves.py --x-label "simultaneous edits k" --x-from-title "k = " \
        --title "Batched editing" --out experiments/results/table5 experiments/results/table5_k*.json
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from mendlight.reporting import format_number, markdown_table


def template_shares(paths: list[Path], marker: str) -> dict[float, dict]:
    """x -> the largest share one prompt template held in a test batch (``{"max", "mean"}``), where known."""
    shares = {}
    for path in paths:
        table = json.loads(path.read_text())
        x = float(re.search(re.escape(marker) + r"([0-9.]+)", table["title"]).group(1))
        for row in table["rows"]:
            composition = row.get("composition")
            if composition:
                shares[x] = composition["largest_template_share"]
                break
    return shares


def load_points(paths: list[Path], marker: str) -> tuple[list[float], dict[str, dict[float, dict]]]:
    """x values in order, and ``editor label -> x -> the row's 'all' summary (with its drawdown key)``."""
    series: dict[str, dict[float, dict]] = {}
    xs = []
    for path in paths:
        table = json.loads(path.read_text())
        match = re.search(re.escape(marker) + r"([0-9.]+)", table["title"])
        if match is None:
            raise SystemExit(f"{path}: title {table['title']!r} has no {marker!r}<number>")
        x = float(match.group(1))
        xs.append(x)
        for row in table["rows"]:
            series.setdefault(row["label"], {})[x] = {
                **row["subsets"]["all"],
                "drawdown_key": row["drawdown"],
            }
    return sorted(set(xs)), series


def curve_markdown(
    xs,
    series,
    x_label: str,
    title: str,
    command: str | None,
    provenance: list[str],
    batches: dict | None = None,
) -> str:
    """The table: one row per x, ES / ES (rephrase) / DD / edit time per batch for each editor.

    ``batches`` (x -> the batch-composition sentence of that x's test) adds a column saying how mixed the
    batches were (see ``mendlight.data.composition``).
    """
    editors = list(series)
    header = [x_label] + [f"{e} {m}" for e in editors for m in ("ES", "ES (rephrase)", "DD", "edit s")]
    if batches:
        header.append("largest template share in a batch (max)")
    body = []
    for x in xs:
        cells = [format_number(int(x) if x.is_integer() else x)]
        for e in editors:
            s = series[e].get(x, {})
            cells += [
                format_number(s.get("es")),
                format_number(s.get("es_equiv")),
                format_number(s.get(s.get("drawdown_key", "acc_drawdown"))),
                format_number(s.get("edit_latency_s")),
            ]
        if batches:
            cells.append(format_number((batches.get(x) or {}).get("max")))
        body.append(cells)
    keys = {s.get("drawdown_key") for points in series.values() for s in points.values()}
    dd = "perplexity" if keys == {"ppl_drawdown"} else "accuracy"
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Reproduce with `{command}`.", ""]
    lines += markdown_table(header, body)
    lines += [
        "",
        f"DD: {dd} drawdown on the locality inputs after the edits; edit s: seconds per edit call (one batch "
        "of k simultaneous edits).",
        "",
        *provenance,
    ]
    return "\n".join(lines) + "\n"


def figure(xs, series, x_label: str, title: str, log_x: bool):
    """ES and drawdown against x, one line per editor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_es, ax_dd) = plt.subplots(1, 2, figsize=(10, 4))
    for editor, points in series.items():
        px = [x for x in xs if x in points]
        ax_es.plot(px, [points[x]["es"] for x in px], marker="o", label=editor)
        ax_dd.plot(px, [points[x][points[x]["drawdown_key"]] for x in px], marker="o", label=editor)
    for ax, name in ((ax_es, "edit success (ES)"), (ax_dd, "drawdown")):
        ax.set_xlabel(x_label)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if log_x:
            ax.set_xscale("log")
    ax_es.set_ylim(0, 1.02)
    ax_es.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def main() -> None:
    """Write OUT.md, OUT.json, OUT.png and the figure into TensorBoard (OUT_tb/)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tables", nargs="+", type=Path, help="OUT.json files of `mendlight table`")
    parser.add_argument("--x-label", required=True)
    parser.add_argument("--x-from-title", required=True, help="the text before the x value in each title")
    parser.add_argument("--title", required=True)
    parser.add_argument("--command", default=None)
    parser.add_argument("--out", required=True, type=Path, help="output path without suffix")
    parser.add_argument("--log-x", action="store_true")
    args = parser.parse_args()
    xs, series = load_points(args.tables, args.x_from_title)
    provenance = sorted(
        {line for t in args.tables for line in json.loads(t.read_text()).get("provenance", [])}
    )
    batches = template_shares(args.tables, args.x_from_title)
    md = curve_markdown(xs, series, args.x_label, args.title, args.command, provenance, batches)
    args.out.with_suffix(".md").write_text(md)
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "title": args.title,
                "command": args.command,
                "x": xs,
                "series": series,
                "template_shares": batches,
            },
            indent=2,
        )
        + "\n"
    )
    fig = figure(xs, series, args.x_label, args.title, args.log_x)
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(args.out.parent / f"{args.out.name}_tb")) as writer:
        writer.add_figure("curve", fig, 0)
        writer.add_text("table", md, 0)
    print(md)


if __name__ == "__main__":
    main()
