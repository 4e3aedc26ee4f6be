"""experiments/curves.py: the Table 5 / sequential curve from `mendlight table` outputs."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "curves.py"
spec = importlib.util.spec_from_file_location("curves", SCRIPT)
curves = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curves)


def _table(path: Path, k: int, es: float, latency: float, share: float | None) -> Path:
    summary = {"es": es, "es_equiv": es / 2, "acc_drawdown": 0.01 * k, "edit_latency_s": latency}
    composition = {"largest_template_share": {"max": share, "mean": share / 2}} if share is not None else None
    mend = {"label": "MEND", "drawdown": "acc_drawdown", "subsets": {"all": summary}}
    malmen = {"label": "MALMEN", "drawdown": "acc_drawdown", "subsets": {"all": {**summary, "es": 1.0}}}
    rows = [{**mend, "composition": composition}, malmen]
    path.write_text(json.dumps({"title": f"Batched editing: k = {k} simultaneous edits", "rows": rows}))
    return path


def test_curve_table_has_edit_time_and_template_share_per_k(tmp_path):
    tables = [_table(tmp_path / "a.json", 25, 0.5, 1.25, 0.2), _table(tmp_path / "b.json", 1, 0.75, 0.5, 1.0)]
    xs, series = curves.load_points(tables, "k = ")
    assert xs == [1.0, 25.0] and list(series) == ["MEND", "MALMEN"]
    shares = curves.template_shares(tables, "k = ")
    assert shares == {25.0: {"max": 0.2, "mean": 0.1}, 1.0: {"max": 1.0, "mean": 0.5}}
    md = curves.curve_markdown(xs, series, "k", "T", "cmd", [], shares)
    header = next(line for line in md.splitlines() if line.startswith("| k |"))
    assert "MEND edit s" in header and "MALMEN edit s" in header and header.endswith("(max) |")
    assert "| 1 | 0.750 | 0.375 | 0.010 | 0.500 | 1.000 | 0.375 | 0.010 | 0.500 | 1.000 |" in md
    assert "| 25 | 0.500 | 0.250 | 0.250 | 1.250 | 1.000 | 0.250 | 0.250 | 1.250 | 0.200 |" in md
    no_share = curves.curve_markdown(xs, series, "k", "T", None, [], {})
    assert "template share" not in no_share


def test_partial_runs_combine_and_the_later_file_counts_for_one_editor_at_one_k(tmp_path):
    early = _table(tmp_path / "early.json", 25, 0.25, 1.0, 0.2)  # MEND 0.25, MALMEN 1.0 at k = 25
    late = json.loads(early.read_text())
    late["rows"] = [{**late["rows"][1], "subsets": {"all": {**late["rows"][1]["subsets"]["all"], "es": 0.5}}}]
    (tmp_path / "late.json").write_text(json.dumps(late))  # only MALMEN, retrained, at k = 25
    other_k = _table(tmp_path / "k1.json", 1, 0.75, 0.5, None)
    xs, series = curves.load_points([early, tmp_path / "late.json", other_k], "k = ")
    assert xs == [1.0, 25.0]
    assert series["MALMEN"][25.0]["es"] == 0.5 and series["MEND"][25.0]["es"] == 0.25
    _, reversed_order = curves.load_points([tmp_path / "late.json", early], "k = ")
    assert reversed_order["MALMEN"][25.0]["es"] == 1.0


def test_editors_are_selected_in_the_order_given_and_an_unknown_label_is_named(tmp_path):
    tables = [_table(tmp_path / "a.json", 25, 0.5, 1.25, 0.2), _table(tmp_path / "b.json", 1, 0.75, 0.5, 1.0)]
    xs, series = curves.load_points(tables, "k = ")
    assert list(curves.select_editors(series, ["MALMEN", "MEND"])) == ["MALMEN", "MEND"]
    assert list(curves.select_editors(series, ["MALMEN"])) == ["MALMEN"]
    assert curves.select_editors(series, None) is series
    with pytest.raises(SystemExit, match=r"no rows labelled \['ENN'\].*\['MEND', 'MALMEN'\]"):
        curves.select_editors(series, ["MALMEN", "ENN"])
    # twelve editors: each gets its own colour, and the legend sits below the panels
    many = {f"editor {i}": series["MEND"] for i in range(12)}
    fig = curves.figure(xs, many, "k", "T", log_x=True)
    colours = {line.get_color() for line in fig.axes[0].get_lines()}
    assert len(colours) == 12 and fig.axes[0].get_legend() is None and len(fig.legends) == 1


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert acc.Tags()["images"] == ["curve"]
    return {tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_a_curve_goes_into_tensorboard_as_a_figure_and_one_scalar_per_point(tmp_path, monkeypatch):
    tables = [_table(tmp_path / "a.json", 25, 0.5, 1.25, 0.2), _table(tmp_path / "b.json", 1, 0.75, 0.5, 1.0)]
    out = tmp_path / "curve"
    argv = ["curves.py", *map(str, tables), "--x-label", "k", "--x-from-title", "k = ", "--title", "T"]
    monkeypatch.setattr("sys.argv", [*argv, "--out", str(out), "--log-x"])
    curves.main()
    scalars = _scalars(tmp_path / "curve_tb")
    assert scalars["es/MEND"] == [(1, 0.75), (25, 0.5)]
    assert scalars["es/MALMEN"] == [(1, 1.0), (25, 1.0)]
    assert scalars["es_rephrase/MEND"] == [(1, 0.375), (25, 0.25)]
    assert scalars["drawdown/MEND"] == [(1, 0.01), (25, 0.25)]
    assert scalars["edit_seconds/MALMEN"] == [(1, 0.5), (25, 1.25)]
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["x_label"] == "k" and saved["log_x"] is True

    # a committed curve alone (OUT.json + OUT.md) gives the same dashboard again
    import shutil

    shutil.rmtree(tmp_path / "curve_tb")
    assert curves.tb_from_curve(out.with_suffix(".json")) == tmp_path / "curve_tb"
    assert _scalars(tmp_path / "curve_tb") == scalars
