"""Benchmark `mendlight edit` end to end against its floor: the edit itself plus loading the model.

Reported, not asserted. Usage: python experiments/bench_edit_command.py [--out FILE.md] [--repeats N]

The floor of one ``mendlight edit -c smollm2_facts_ft --prompt ... --target ...`` is what any command-line
tool must do: start Python, load the base model and tokenizer with transformers (imports included, from the
warm cache), and compute the edit. Everything else is overhead: importing Lightning and mendlight, parsing
the config, building the editor and data module, the greedy answers before and after the edit (edit prompt,
rephrase, locality-check prompts), choosing the check prompts, printing. The command runs as a subprocess,
warm (the dequantised model and the fact corpus are cached; one unmeasured run first), ``--repeats`` times;
its ``--json`` report gives the edit's, the answers' and the check's own seconds. The loading floor and the
imports are timed in fresh subprocesses as often. The aim (issue #15): end to end within 2x the floor.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mendlight.models.loading import resolve_model_dir
from mendlight.reporting import machine_info

CONFIG = "smollm2_facts_ft"
EDIT_ARGS = ["--prompt", "The capital of France is", "--target", "Rome", "--json"]
#: What the floor imports: torch, transformers and the model class.
BASE_IMPORTS = "import torch, transformers; from transformers import AutoModelForCausalLM, AutoTokenizer"
#: What the command imports on top.
ALL_IMPORTS = BASE_IMPORTS + "; import pytorch_lightning, mendlight.cli"
#: The loading floor: a fresh Python that loads the (cached, dequantised) model and tokenizer.
LOAD = BASE_IMPORTS + "; AutoTokenizer.from_pretrained({d!r}); AutoModelForCausalLM.from_pretrained({d!r})"


def _python(code: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, out


def _edit_command(runs_root: Path) -> tuple[float, dict]:
    env = {**os.environ, "MENDLIGHT_RUNS": str(runs_root)}
    command = [sys.executable, "-m", "mendlight", "edit", "-c", CONFIG, *EDIT_ARGS]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    text = done.stdout
    report = json.loads(text[text.index("{") : text.rindex("}") + 1])
    return wall, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="write the table to this Markdown file too")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs-root", default="/tmp/mendlight-bench-edit-runs", help="the edit runs' root")
    args = parser.parse_args()
    root = Path(args.runs_root)
    _edit_command(root)  # warm-up: caches built, files in the page cache
    load = LOAD.format(d=resolve_model_dir("smollm2-135m"))
    walls, reports, base_imports, all_imports, loads = [], [], [], [], []
    for _ in range(args.repeats):
        wall, report = _edit_command(root)
        walls.append(wall)
        reports.append(report["timings"])
        base_imports.append(_python(BASE_IMPORTS)[0])
        all_imports.append(_python(ALL_IMPORTS)[0])
        loads.append(_python(load)[0])

    def med(values: list[float]) -> float:
        return statistics.median(values)

    edit_s = med([r["edit_s"] for r in reports])
    load_s = med(loads)
    floor = edit_s + load_s
    wall = med(walls)
    info = machine_info()
    check_s = med([r["check_s"] for r in reports])
    rows = [
        ("`mendlight edit` end to end (wall clock)", wall),
        ("floor: the edit itself (`edit_s`)", edit_s),
        ("floor: a fresh Python loading SmolLM2 + tokenizer with transformers (imports included)", load_s),
        ("overhead: importing Lightning and mendlight's CLI", med(all_imports) - med(base_imports)),
        (
            "overhead: greedy answers before/after, edit + rephrase + check prompts (`preview_s`)",
            med([r["preview_s"] for r in reports]),
        ),
        ("overhead: choosing and encoding the check prompts (`check_s`)", check_s),
    ]
    lines = [
        "# `mendlight edit` end to end on SmolLM2-135M (CPU)",
        "",
        f"- command: `python experiments/bench_edit_command.py --repeats {args.repeats}`; the edit: "
        f"`mendlight edit -c {CONFIG} {shlex.join(EDIT_ARGS[:-1])}` (FT, Adam 1e-3, until the target is the "
        "argmax), warm, medians of the repeats",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {info['platform']}, {info['cpu_count']} CPU cores, torch {info.get('torch')}; "
        f"commit {info['commit']}",
        "",
        "| measurement | seconds | × floor |",
        "|---|---|---|",
        *[f"| {name} | {value:.2f} | {value / floor:.2f} |" for name, value in rows],
        "",
        f"End to end / floor: **{wall / floor:.2f}×** (aim: at most 2×). The overheads are measured"
        " apart (the imports in fresh processes, the rest from the command's own report), so they need not"
        " add up to the wall clock exactly; what they leave out is parsing the config, building the editor"
        " and data module, encoding and printing.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
