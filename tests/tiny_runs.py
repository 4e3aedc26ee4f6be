"""``mendlight fit`` (and ``test``) of ``configs/tiny_debug.yaml`` in a temporary directory, in-process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mendlight.data.records import write_records
from tests.models.test_architectures import _records

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny_debug.yaml"
#: Where :func:`run_tiny`'s test run goes, relative to the runs it returns: inside the fit's run.
TEST_RUN = Path("version_0") / "tests" / "version_0"


def run_tiny(tmp_path: Path, fit_args: list[str] | None = None, test: bool = False, n: int = 8) -> Path:
    """Fit the tiny config on ``n`` completion records per split written under ``tmp_path``; return the runs.

    The fit is ``runs/tiny_debug/version_0`` under ``tmp_path``; with ``test`` its ``last.ckpt`` is tested
    into the fit's run, ``version_0/tests/version_0`` (:data:`TEST_RUN`). Returns
    ``tmp_path / "runs" / "tiny_debug"``.
    """
    from mendlight.cli import main

    data = tmp_path / "records"
    data.mkdir()
    for split in ("train", "val", "test"):
        write_records(data / f"{split}.jsonl", _records("completion", n))
    cwd, argv = os.getcwd(), sys.argv
    os.chdir(tmp_path)
    sys.argv = ["mendlight"]
    runs = tmp_path / "runs" / "tiny_debug"
    try:
        main(["fit", "-c", str(TINY), "--data.init_args.dataset", str(data), *(fit_args or [])])
        if test:
            fit = runs / "version_0"
            last = fit / "checkpoints" / "last.ckpt"
            main(["test", "-c", str(fit / "config.yaml"), "--ckpt_path", str(last)])
    finally:
        os.chdir(cwd)
        sys.argv = argv
    return runs
