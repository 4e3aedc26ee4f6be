from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny matmuls are far faster on one thread, above all when another job shares the CPU cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def run_mendlight(capsys, no_argv):
    """Run ``mendlight <args>`` in-process; return ``(exit status, stdout, stderr)`` (0 if it returned)."""
    from mendlight.cli import main

    def run(args: list[str]) -> tuple[int, str, str]:
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def one_error_line(err: str) -> str:
    """The single ``mendlight: error: ...`` line of a rejected command (and no traceback)."""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("mendlight: error:")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def main_in(directory: Path, args: list[str]) -> None:
    """Run ``mendlight <args>`` in-process with ``directory`` as the working directory (for module fixtures,
    which cannot use ``monkeypatch``)."""
    from mendlight.cli import main

    cwd, argv = os.getcwd(), sys.argv
    os.chdir(directory)
    sys.argv = ["mendlight"]
    try:
        main(args)
    finally:
        os.chdir(cwd)
        sys.argv = argv
