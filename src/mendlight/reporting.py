"""Results files (``results.json`` / ``results.md``) and paper-style comparison tables.

Per-record rows are plain dicts produced by an editor during ``test`` (see :func:`summarise` for the keys).
The summary numbers use exactly the definitions of :mod:`mendlight.metrics` (recorded in
:data:`mendlight.metrics.PROTOCOLS`), computed from sufficient statistics summed over records.

CLI: ``python -m mendlight.reporting RESULTS.json|RUN_DIR [...] [--out FILE.md]`` prints a comparison table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mendlight.data.composition import batch_composition, composition_line
from mendlight.metrics import (
    PROTOCOLS,
    accuracy_drawdown_of,
    mean_agreement,
    perplexity_drawdown_of,
    success_rate,
)

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
SUBSET_LABELS: dict[str, str] = {
    "all": "all",
    "known": "known facts",
    "unknown": "unknown facts",
    "seen_relations": "relations seen in training",
    "unseen_relations": "relations not seen in training",
}
METRIC_KEYS: tuple[str, ...] = (
    "es",
    "es_edit",
    "es_equiv",
    "acc_drawdown",
    "ppl_drawdown",
    "locality",
    "edit_latency_s",
    "known_fraction",
)
# (column header, summary key, scale)
_COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("ES", "es", 1.0),
    ("ES (edit)", "es_edit", 1.0),
    ("ES (rephrase)", "es_equiv", 1.0),
    ("acc DD", "acc_drawdown", 1.0),
    ("ppl DD", "ppl_drawdown", 1.0),
    ("locality", "locality", 1.0),
    ("latency (ms)", "edit_latency_s", 1000.0),
)
_SAMPLE_ROWS = 8
_SAMPLE_CHARS = 160
_REQUIRED_KEYS = ("editor", "subsets")


def _values(rows: Iterable[Mapping[str, Any]], key: str) -> list[float]:
    """Return the non-None values of ``key`` over ``rows`` (missing keys are skipped)."""
    return [row[key] for row in rows if row.get(key) is not None]


def _total(rows: Iterable[Mapping[str, Any]], key: str) -> float:
    """Sum of the non-None values of ``key`` over ``rows``."""
    return sum(_values(rows, key))


def _ratio(num: float, den: float) -> float | None:
    """``num / den``, or None when the denominator is zero (no data)."""
    return None if not den else num / den


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """Summarise per-record rows with the metric formulas of :mod:`mendlight.metrics`.

    The formulas are the functions the torchmetrics objects compute with, applied to the rows' sums, so a
    summary of a run's rows and the metrics it logged are one definition.

    Expected row keys (missing or None values count as "no data" for that statistic): ``es_edit`` (0/1),
    ``equiv_success``, ``equiv_total``, ``loc_pre_correct``, ``loc_post_correct``, ``loc_total``,
    ``loc_agree_sum``, ``loc_pre_nll``, ``loc_post_nll``, ``loc_tokens``, ``latency_s``, ``known``.

    Args:
        rows: Per-record dicts produced by an editor during ``test``.

    Returns:
        ``{"n_records", "es", "es_edit", "es_equiv", "acc_drawdown", "ppl_drawdown", "locality",
        "edit_latency_s", "known_fraction"}``; ``es`` pools edit and rephrase rows,
        ``(Σ es_edit + Σ equiv_success) / (n + Σ equiv_total)``; a metric without data is None.

    """
    edit = _values(rows, "es_edit")
    n_edit, edit_ok = len(edit), float(sum(edit))
    eq_ok, eq_n = _total(rows, "equiv_success"), _total(rows, "equiv_total")
    loc_n = _total(rows, "loc_total")
    latency = _values(rows, "latency_s")
    known = [bool(k) for k in _values(rows, "known")]
    return {
        "n_records": len(rows),
        "es": success_rate(edit_ok + eq_ok, n_edit + eq_n),
        "es_edit": success_rate(edit_ok, n_edit),
        "es_equiv": success_rate(eq_ok, eq_n),
        "acc_drawdown": accuracy_drawdown_of(
            _total(rows, "loc_pre_correct"), _total(rows, "loc_post_correct"), loc_n
        ),
        "ppl_drawdown": perplexity_drawdown_of(
            _total(rows, "loc_pre_nll"), _total(rows, "loc_post_nll"), _total(rows, "loc_tokens")
        ),
        "locality": mean_agreement(_total(rows, "loc_agree_sum"), loc_n),
        "edit_latency_s": _ratio(sum(latency), len(latency)),
        "known_fraction": _ratio(sum(known), len(known)),
    }


def by_relation(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """:func:`summarise` of the rows of each relation (rows without a ``relation`` are left out).

    Args:
        rows: Per-record dicts produced by an editor during ``test``.

    Returns:
        ``relation -> summary``, sorted by relation name, each summary with ``"seen"`` added: whether that
        relation was in training (``relation_in_train`` of its rows; None where the rows do not say).

    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("relation") is not None:
            groups.setdefault(str(row["relation"]), []).append(row)
    out: dict[str, dict[str, float | int | None]] = {}
    for rel in sorted(groups):
        seen = {r.get("relation_in_train") for r in groups[rel]} - {None}
        out[rel] = {**summarise(groups[rel]), "seen": bool(seen.pop()) if len(seen) == 1 else None}
    return out


def relation_table(results_list: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines of ES per relation (rows) and editor (columns), with each relation's record count.

    Args:
        results_list: Results dicts (their ``by_relation``); relations missing from one editor show ``-``.

    Returns:
        A heading and table, or no lines when no results dict has per-relation summaries.

    """
    relations = sorted({rel for r in results_list for rel in (r.get("by_relation") or {})})
    if not relations:
        return []
    editors = [escape_cell(r.get("editor"), None) for r in results_list]
    body = []
    for rel in relations:
        cells = [(r.get("by_relation") or {}).get(rel) for r in results_list]
        first = next(c for c in cells if c is not None)
        seen = {True: "yes", False: "no"}.get(first.get("seen"), "?")  # type: ignore[arg-type]
        body.append(
            [escape_cell(rel, None), seen, format_number(first.get("n_records"))]
            + [format_number(c.get("es")) if c else "-" for c in cells]
        )
    header = ["relation", "in training", "n", *(f"ES {e}" for e in editors)]
    return ["", "## ES per relation", "", *markdown_table(header, body)]


def _git_commit() -> str | None:
    """The commit of the checkout the package runs from (with ``+dirty`` for local changes), if any."""
    import subprocess

    root = str(Path(__file__).resolve().parents[2])

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=5)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) if commit else None


def machine_info() -> dict[str, Any]:
    """Describe the machine: platform, CPU count, threads, Python and torch versions, accelerator, commit."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "commit": _git_commit(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["device"] = f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            info["device"] = "mps"
        else:
            info["device"] = "cpu"
    except ImportError:  # pragma: no cover - torch is a hard dependency of the package
        info["torch"], info["device"] = None, "cpu"
    return info


def build_results(
    rows: Sequence[Mapping[str, Any]],
    *,
    editor: str,
    base_model: str,
    dataset: str,
    split: str,
    protocol: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the content of ``results.json``.

    Args:
        rows: Per-record dicts (stored verbatim under ``"records"``).
        editor: Editor name (e.g. ``"mend"``, ``"ft"``).
        base_model: Name of the edited base model.
        dataset: Dataset name.
        split: Split name (e.g. ``"test"``).
        protocol: Run protocol (seed, batch of edits, ...); the metric definitions are added under
            ``protocol["metrics"]``.
        extra: Further top-level keys (must not collide with the standard ones).

    Returns:
        ``{"editor", "base_model", "dataset", "split", "created", "machine", "protocol", "subsets",
        "by_relation", "composition", "records", **extra}`` where ``subsets`` holds :func:`summarise` of
        all rows, of the known and unknown rows when some row has a non-None ``known``, and of the rows whose
        relation was or was not in training when some row has a non-None ``relation_in_train``;
        ``by_relation`` holds :func:`summarise` per ``relation`` (empty when no row names one);
        ``composition`` is :func:`~mendlight.data.composition.batch_composition` of the rows cut into
        batches of ``protocol["n_edits_per_batch"]`` (None without it).

    Raises:
        ValueError: If a key of ``extra`` collides with a standard key.

    """
    rows = list(rows)
    subsets: dict[str, dict[str, Any]] = {"all": summarise(rows)}
    if any(row.get("known") is not None for row in rows):
        subsets["known"] = summarise([r for r in rows if r.get("known") is True])
        subsets["unknown"] = summarise([r for r in rows if r.get("known") is False])
    if any(row.get("relation_in_train") is not None for row in rows):
        subsets["seen_relations"] = summarise([r for r in rows if r.get("relation_in_train") is True])
        subsets["unseen_relations"] = summarise([r for r in rows if r.get("relation_in_train") is False])
    results: dict[str, Any] = {
        "editor": editor,
        "base_model": base_model,
        "dataset": dataset,
        "split": split,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "protocol": {**dict(protocol), "metrics": {k: PROTOCOLS[k] for k in METRIC_KEYS}},
        "subsets": subsets,
        "by_relation": by_relation(rows),
        "composition": batch_composition(rows, protocol.get("n_edits_per_batch")),
        "records": rows,
    }
    clash = sorted(set(extra or {}) & set(results))
    if clash:
        raise ValueError(f"extra keys collide with standard results keys: {clash}")
    results.update(extra or {})
    return results


def _json_default(obj: Any) -> Any:
    """JSON fallback for tensors, numpy scalars/arrays and paths."""
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # torch.Tensor, numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(run_dir: str | os.PathLike[str], results: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` (indent 2) and ``results.md`` into ``run_dir`` atomically.

    Args:
        run_dir: Run directory (created if needed).
        results: Output of :func:`build_results`.

    Returns:
        ``(json_path, markdown_path)``.

    """
    run_dir = Path(run_dir)
    json_path, md_path = run_dir / RESULTS_JSON, run_dir / RESULTS_MD
    _atomic_write(json_path, json.dumps(results, indent=2, default=_json_default) + "\n")
    _atomic_write(md_path, results_markdown(results))
    return json_path, md_path


def write_measurement(out: str, title: str, command: str, text: str, rows: list[dict[str, Any]]) -> None:
    """Write an experiment script's ``OUT.json`` (its rows) and ``OUT.md`` (``text``), each with provenance.

    Both files carry the command, the date and :func:`machine_info`; ``OUT.md`` starts with ``# title``.
    """
    meta = {"command": command, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **machine_info()}
    _atomic_write(Path(out + ".json"), json.dumps({**meta, "rows": rows}, indent=1))
    header = "\n".join(f"- {key}: {value}" for key, value in meta.items())
    _atomic_write(Path(out + ".md"), f"# {title}\n\n{header}\n\n{text}\n")


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a results file, or ``results.json`` inside a run directory.

    Args:
        path: A ``results.json`` file or a run directory containing one.

    Returns:
        The parsed results dict.

    Raises:
        FileNotFoundError: If the file (or the directory's ``results.json``) does not exist.
        ValueError: If the file is not valid JSON or lacks the standard results keys.

    """
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_JSON
    if not p.is_file():
        raise FileNotFoundError(f"results file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a results file (invalid JSON): {p}: {exc}") from exc
    if not isinstance(data, dict) or any(k not in data for k in _REQUIRED_KEYS):
        raise ValueError(f"not a results file (expected keys {list(_REQUIRED_KEYS)}): {p}")
    return data


def format_number(value: Any, scale: float = 1.0) -> str:
    """Format a table cell: 3 decimals for floats, integers as is, None/NaN as "–".

    Args:
        value: Number (or None).
        scale: Multiplier applied to floats before formatting (e.g. 1000 for ms).

    Returns:
        The formatted string.

    """
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    if isinstance(value, int) and scale == 1.0:
        return str(value)
    value = float(value) * scale
    return "–" if math.isnan(value) else f"{value:.3f}"


def escape_cell(text: Any, limit: int | None = _SAMPLE_CHARS) -> str:
    """Make ``text`` safe for a Markdown table cell: escape pipes, turn newlines into ``<br>``."""
    s = "" if text is None else str(text)
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    s = s.replace("\\", "\\\\").replace("|", "\\|")
    return s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def markdown_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    """Render a Markdown table as lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def _metric_cells(summary: Mapping[str, Any]) -> list[str]:
    """Return the n and metric cells of one summary row."""
    return [format_number(summary.get("n_records"))] + [
        format_number(summary.get(key), scale) for _, key, scale in _COLUMNS
    ]


_METRIC_HEADER = ["n"] + [name for name, _, _ in _COLUMNS]


def results_markdown(results: Mapping[str, Any]) -> str:
    """Render one results dict as a paper-style Markdown report.

    Args:
        results: Output of :func:`build_results` (or a loaded ``results.json``).

    Returns:
        Markdown: a header line (editor, base model, dataset, split, date), a table with one row per subset
        (all / known facts / unknown facts) and a "Samples" table with the first 8 records.

    """
    lines = [
        f"# Editing results: {escape_cell(results.get('editor'), None)}",
        "",
        " · ".join(
            f"**{name}** {escape_cell(results.get(key), None)}"
            for name, key in (
                ("Editor", "editor"),
                ("base model", "base_model"),
                ("dataset", "dataset"),
                ("split", "split"),
                ("date", "created"),
            )
        ),
        "",
    ]
    subsets = results.get("subsets", {})
    body = [[SUBSET_LABELS.get(name, name), *_metric_cells(s)] for name, s in subsets.items()]
    lines += markdown_table(["subset", *_METRIC_HEADER], body)
    known = subsets.get("all", {}).get("known_fraction")
    if known is not None:
        lines += [
            "",
            f"Known fraction (unedited model already gives the true target): {format_number(known)}",
        ]
    composition = composition_line(results.get("composition"))
    if composition:
        lines += ["", f"Batches: {composition}"]
    lines += relation_table([results])
    records = list(results.get("records") or [])
    records = ([r for r in records if r.get("pre_output") or r.get("post_output")] or records)[:_SAMPLE_ROWS]
    if records:
        lines += ["", "## Samples", ""]
        sample_body = [
            [escape_cell(r.get(k)) for k in ("prompt", "target", "pre_output", "post_output")]
            for r in records
        ]
        lines += markdown_table(["prompt", "target", "pre-edit output", "post-edit output"], sample_body)
    return "\n".join(lines) + "\n"


def provenance_lines(results_list: Sequence[Mapping[str, Any]]) -> list[str]:
    """One Markdown bullet per run: editor, when and where it was measured (machine, torch, commit)."""
    lines = []
    for r in results_list:
        m = r.get("machine") or {}
        where = ", ".join(
            str(x)
            for x in (
                m.get("platform"),
                f"{m.get('cpu_count')} CPUs" if m.get("cpu_count") else None,
                f"{m.get('torch_threads')} torch threads" if m.get("torch_threads") else None,
                f"torch {m['torch']}" if m.get("torch") else None,
                m.get("device"),
                f"commit {m['commit']}" if m.get("commit") else None,
            )
            if x
        )
        lines.append(f"- {escape_cell(r.get('editor'), None)}: measured {r.get('created', '?')} on {where}")
    return lines


def comparison_markdown(
    results_list: Sequence[Mapping[str, Any]], title: str = "Editor comparison", command: str | None = None
) -> str:
    """Render a table comparing several editors on the same data (MEND paper Table 4 style).

    Args:
        results_list: Results dicts, one per editor run.
        title: the heading.
        command: the command that reproduces the table, shown under the heading.

    Returns:
        Markdown: a line naming dataset, split and base model (plus a warning line when these differ across
        inputs), a table with one row per editor × subset, and where and when each row was measured.

    """
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Reproduce with `{command}`.", ""]
    if not results_list:
        return "\n".join([*lines, "(no results)"]) + "\n"
    fields = ("dataset", "split", "base_model")
    values = {f: list(dict.fromkeys(str(r.get(f)) for r in results_list)) for f in fields}
    shown = {f: " / ".join(v) for f, v in values.items()}
    lines.append(" · ".join(f"**{f.replace('_', ' ')}** {escape_cell(shown[f], None)}" for f in fields))
    differing = [f for f in fields if len(values[f]) > 1]
    if differing:
        lines.append("")
        lines.append(
            f"> **Warning:** the inputs differ in {', '.join(differing)}; "
            "the rows are not directly comparable."
        )
    lines.append("")
    body = [
        [escape_cell(r.get("editor"), None), SUBSET_LABELS.get(name, name), *_metric_cells(s)]
        for r in results_list
        for name, s in r.get("subsets", {}).items()
    ]
    lines += markdown_table(["editor", "subset", *_METRIC_HEADER], body)
    for line in dict.fromkeys(composition_line(r.get("composition")) for r in results_list):
        if line:  # one line per distinct batching (the editors of a table are usually tested alike)
            lines += ["", f"Batches: {line}"]
    lines += relation_table(results_list)
    lines += ["", *provenance_lines(results_list)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print (and optionally write) a comparison table of several results files.

    Args:
        argv: Command-line arguments (defaults to ``sys.argv[1:]``): ``RESULTS [RESULTS ...] [--out FILE]``,
            each RESULTS being a ``results.json`` file or a run directory containing one.

    Returns:
        Exit status 0. Errors (missing or invalid file) exit with status 2 and a message naming the path.

    """
    parser = argparse.ArgumentParser(
        prog="python -m mendlight.reporting", description="Compare editors from results.json files."
    )
    parser.add_argument("results", nargs="+", help="results.json files or run directories containing one")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    parser.add_argument("--title", default="Editor comparison", help="the table's heading")
    parser.add_argument("--command", default=None, help="the command that reproduces the table (shown)")
    args = parser.parse_args(argv)
    loaded = []
    for path in args.results:
        try:
            loaded.append(load_results(path))
        except (FileNotFoundError, ValueError) as exc:
            parser.error(str(exc))
    table = comparison_markdown(loaded, title=args.title, command=args.command)
    sys.stdout.write(table)
    if args.out is not None:
        _atomic_write(args.out, table)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
