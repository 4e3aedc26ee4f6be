"""experiments/curves.py: the Table 5 / sequential curve from `mendlight table` outputs."""

import importlib.util
import json
from pathlib import Path

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
