"""experiments/bench_batched.py: one k-edit call against k single edits, on a tiny model."""

import importlib.util
from pathlib import Path

from mendlight.data.records import write_records
from tests.models.test_architectures import _records

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench_batched.py"
spec = importlib.util.spec_from_file_location("bench_batched", SCRIPT)
bench_batched = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_batched)


def test_bench_reports_every_editor_and_k_with_extrapolated_singles(tmp_path, capsys):
    for split in ("train", "val", "test"):
        write_records(tmp_path / f"{split}.jsonl", _records("completion", 6))
    out = tmp_path / "bench.md"
    argv = ["--base_model", "tiny-random-llama", "--dataset", str(tmp_path), "--rank", "4"]
    bench_batched.main([*argv, "--ks", "1", "5", "--singles", "2", "--out", str(out)])
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| MEND |", "| MALMEN |"))]
    assert [line.split(" | ")[:2] for line in rows] == [
        ["| MEND", "1"],
        ["| MEND", "5"],
        ["| MALMEN", "1"],
        ["| MALMEN", "5"],
    ]
    assert all("(extrapolated)" in line for line in rows if line.split(" | ")[1] == "5")  # 2 of 5 timed
    assert not any("(extrapolated)" in line for line in rows if line.split(" | ")[1] == "1")
    assert "--ks 1 5 --singles 2 --rank 4" in table and "commit" in table
    peaks = [float(line.split(" | ")[-1].split()[0]) for line in rows]
    assert all(peak > 0 for peak in peaks)
    assert capsys.readouterr().out.count("'editor'") == 4
