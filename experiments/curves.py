"""Turn `mendlight table` outputs (one per x value) into a curve: a Markdown table, a PNG, TensorBoard.

Each input is the OUT.json of `mendlight table`; its title carries the x value after a marker
(``--x-from-title "k = "`` reads 25 from "... k = 25 simultaneous edits"). For every editor row the edit
success (ES, ES on rephrases) and the table's drawdown are collected per x. Inputs may be partial runs (a
few editors at one x each); where two inputs hold the same editor label at the same x, the later input on the
command line counts (so a retrained editor's rows, given last, replace its earlier ones).

    python experiments/curves.py --x-label "simultaneous edits k" --x-from-title "k = " \
        --title "Batched editing" --out experiments/results/table5 experiments/results/table5_k*.json

TensorBoard (``OUT_tb/``, not committed): the figure, the Markdown table, and every point as a scalar
``<metric>/<editor>`` at step x (ES, ES on rephrases, drawdown, edit seconds), so the curves can be read and
compared interactively. ``--tb-from OUT.json`` rewrites ``OUT_tb/`` from a committed curve alone (``make tb``
does this for every curve in experiments/results before it starts TensorBoard).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
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


def select_editors(series: dict[str, dict], editors: list[str] | None) -> dict[str, dict]:
    """The series of ``editors`` in that order (all of them, in file order, without a selection).

    Raises:
        SystemExit: naming an editor the tables do not hold, with the labels they do hold.

    """
    if not editors:
        return series
    unknown = [e for e in editors if e not in series]
    if unknown:
        raise SystemExit(f"--editors: no rows labelled {unknown} in the tables; their labels: {list(series)}")
    return {e: series[e] for e in editors}


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

    columns = 3 if len(series) > 4 else max(1, len(series))
    legend_rows = -(-len(series) // columns)
    height = 4 + 0.25 * legend_rows
    fig, (ax_es, ax_dd) = plt.subplots(1, 2, figsize=(10, height))
    palette = plt.get_cmap("tab20" if len(series) > 10 else "tab10").colors  # one colour per editor
    for i, (editor, points) in enumerate(series.items()):
        px = [x for x in xs if x in points]
        style = {"marker": "o", "label": editor, "color": palette[i % len(palette)]}
        ax_es.plot(px, [points[x]["es"] for x in px], **style)
        ax_dd.plot(px, [points[x][points[x]["drawdown_key"]] for x in px], **style)
    for ax, name in ((ax_es, "edit success (ES)"), (ax_dd, "drawdown")):
        ax.set_xlabel(x_label)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if log_x:
            ax.set_xscale("log")
    ax_es.set_ylim(0, 1.02)
    # below both panels, where it hides no point
    fig.legend(*ax_es.get_legend_handles_labels(), loc="lower center", ncol=columns, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.25 * legend_rows / height + 0.02, 1, 1))
    return fig


#: Scalars written per point: tag prefix -> how to read it from a summary.
TB_SCALARS = {
    "es": lambda s: s.get("es"),
    "es_rephrase": lambda s: s.get("es_equiv"),
    "drawdown": lambda s: s.get(s.get("drawdown_key", "acc_drawdown")),
    "edit_seconds": lambda s: s.get("edit_latency_s"),
}


def write_tensorboard(log_dir: Path, xs, series, md: str, fig) -> None:
    """The curve into TensorBoard: figure, table, and each point as ``<metric>/<editor>`` at step x."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        writer.add_figure("curve", fig, 0)
        writer.add_text("table", md, 0)
        for editor, points in series.items():
            for x in xs:
                if x not in points:
                    continue
                for metric, read in TB_SCALARS.items():
                    value = read(points[x])
                    if value is not None:
                        writer.add_scalar(f"{metric}/{editor}", float(value), int(x))


def tb_from_curve(curve_json: Path) -> Path:
    """Rewrite ``OUT_tb/`` of a committed curve from its ``OUT.json`` and ``OUT.md``; returns the dir."""
    data = json.loads(curve_json.read_text())
    xs = [float(x) for x in data["x"]]
    series = {e: {float(x): s for x, s in points.items()} for e, points in data["series"].items()}
    fig = figure(xs, series, data["x_label"], data["title"], data.get("log_x", False))
    log_dir = curve_json.parent / f"{curve_json.stem}_tb"
    if log_dir.exists():
        shutil.rmtree(log_dir)
    write_tensorboard(log_dir, xs, series, curve_json.with_suffix(".md").read_text(), fig)
    return log_dir


def main() -> None:
    """Write OUT.md, OUT.json, OUT.png and the figure into TensorBoard (OUT_tb/)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "tables",
        nargs="*",
        type=Path,
        help="OUT.json files of `mendlight table`; for one editor at one x the last file counts",
    )
    parser.add_argument(
        "--tb-from", type=Path, nargs="+", help="only rewrite OUT_tb/ of these curve OUT.json"
    )
    parser.add_argument("--x-label")
    parser.add_argument("--x-from-title", help="the text before the x value in each title")
    parser.add_argument("--title")
    parser.add_argument("--command", default=None)
    parser.add_argument("--out", type=Path, help="output path without suffix")
    parser.add_argument("--log-x", action="store_true")
    parser.add_argument(
        "--editors", nargs="+", metavar="LABEL", help="only these editors' rows, in this order (default: all)"
    )
    args = parser.parse_args()
    if args.tb_from:
        for curve in args.tb_from:
            print(f"{curve} -> {tb_from_curve(curve)}")
        return
    missing = [
        f"--{n.replace('_', '-')}"
        for n in ("x_label", "x_from_title", "title", "out")
        if not getattr(args, n)
    ]
    if missing or not args.tables:
        parser.error(f"give the tables and {', '.join(missing) or 'them'} (or --tb-from CURVE.json)")
    xs, series = load_points(args.tables, args.x_from_title)
    series = select_editors(series, args.editors)
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
                "x_label": args.x_label,
                "log_x": args.log_x,
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
    write_tensorboard(args.out.parent / f"{args.out.name}_tb", xs, series, md, fig)
    print(md)


if __name__ == "__main__":
    main()
