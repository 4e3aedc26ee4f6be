r"""``mendlight table``: several editors evaluated on the same test records, one paper-style table.

    mendlight table -c configs/smollm2_qa.yaml \
        --editor runs/smollm2_qa/version_3 \
        --editor configs/smollm2_qa_ft.yaml \
        --editor "MEND (no norm)=runs/smollm2_qa_nonorm/version_0/checkpoints/last.ckpt" \
        --out experiments/results/table4_qa --title "Table 4 analogue: question answering"

An editor is a fit run directory (its ``config.yaml`` and best checkpoint, else ``last.ckpt``), a checkpoint
inside a run directory, or config files (a test-time editor; several, comma-separated, compose like repeated
``-c``: ``configs/smollm2_qa.yaml,configs/editor/ft.yaml``; ``CONFIG::CHECKPOINT`` names both), with an
optional ``LABEL=`` prefix. The *setting* config (``-c``) supplies the data section, which replaces each
editor's own, so every editor is tested on the same records; arguments after ``--`` go to every
``mendlight test`` run (``-- --data.init_args.eval_n_edits 5``). Each editor's run writes its usual
``results.json``; the table command writes ``OUT.md`` (the table: ES, the task's drawdown — accuracy for
question answering and fact-checking, perplexity for generation — and edit latency, then the full metrics),
``OUT.json`` (the summaries and the runs they come from) and the Markdown into TensorBoard (``OUT_tb/``).

Bad input (a missing file, an unknown option, a base model that cannot be loaded, a bad records file...)
ends the command with one ``mendlight table: error: ...`` line and status 2, without a traceback; the run
directory of the editor it stopped at is removed if it holds nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mendlight.errors import UserInputError, user_error_behind
from mendlight.loggers import RunLogger, remove_unused_runs
from mendlight.reporting import (
    comparison_markdown,
    escape_cell,
    format_number,
    load_results,
    markdown_table,
    provenance_lines,
)

#: Runs one ``mendlight`` command line and returns its LightningCLI (:func:`mendlight.cli.run_cli`).
RunCli = Callable[[list[str]], Any]


class TableError(UserInputError, ValueError):
    """A bad ``mendlight table`` argument; the message says what to pass."""


@dataclass
class EditorSpec:
    """One editor of a table: a label, its config files (composed in order) and its checkpoint, if trained."""

    label: str | None
    configs: list[Path]
    ckpt: Path | None

    @property
    def config(self) -> Path:
        """The first config file."""
        return self.configs[0]


def parse_editor(text: str) -> EditorSpec:
    """Parse ``[LABEL=]RUN_DIR | CHECKPOINT | CONFIG[,CONFIG...][::CHECKPOINT]`` (see the module doc)."""
    label, _, ref = text.rpartition("=") if "=" in text else (None, "", text)
    config_part, _, ckpt_part = ref.partition("::")
    paths = [Path(p) for p in config_part.split(",")]
    for extra in paths[1:]:
        if not extra.is_file():
            raise TableError(f"editor {text!r}: config file {extra} does not exist")
    path = paths[0]
    if ckpt_part:
        config, ckpt = path, Path(ckpt_part)
    elif path.is_dir():
        config = path / "config.yaml"
        best = sorted((path / "checkpoints").glob("best-*.ckpt"))
        ckpt = best[-1] if best else path / "checkpoints" / "last.ckpt"
    elif path.suffix == ".ckpt":
        ckpt = path
        config = next((p / "config.yaml" for p in path.parents if (p / "config.yaml").is_file()), path)
    else:
        config, ckpt = path, None
    if not config.is_file() or config.suffix not in (".yaml", ".yml"):
        raise TableError(
            f"editor {text!r}: no config file at {config} "
            "(give a run directory, a checkpoint inside one, or a config)"
        )
    if ckpt is not None and not ckpt.is_file():
        raise TableError(f"editor {text!r}: checkpoint {ckpt} does not exist")
    return EditorSpec(label or None, [config, *paths[1:]], ckpt)


def _data_section(setting: Path, tmp: Path) -> Path:
    try:
        config = yaml.safe_load(setting.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise TableError(f"setting config {setting}: {err}") from err
    if not isinstance(config, dict) or "data" not in config:
        raise TableError(f"setting config {setting} has no 'data' section")
    path = tmp / "data.yaml"
    path.write_text(yaml.safe_dump(config["data"]))
    return path


def task_drawdown(results: dict) -> tuple[str, str]:
    """The drawdown of a setting's task: ``("ppl DD", key)`` for generation edits, else accuracy drawdown."""
    tasks = {r.get("task", "completion") for r in results.get("records", [])}
    return ("ppl DD", "ppl_drawdown") if tasks == {"generation"} else ("acc DD", "acc_drawdown")


def paper_table(labelled: list[tuple[str, dict]]) -> list[str]:
    """The table of the paper's kind: editor, ES, the task's drawdown, edit latency (all test records)."""
    header = ["editor", "n", "ES", "ES (edit)", "ES (rephrase)", "DD", "latency (ms)"]
    body = []
    for label, results in labelled:
        s = results["subsets"]["all"]
        name, key = task_drawdown(results)
        body.append(
            [
                escape_cell(label, None),
                format_number(s.get("n_records")),
                format_number(s.get("es")),
                format_number(s.get("es_edit")),
                format_number(s.get("es_equiv")),
                f"{format_number(s.get(key))} ({name})",
                format_number(s.get("edit_latency_s"), 1000.0),
            ]
        )
    return markdown_table(header, body)


def table_markdown(labelled: list[tuple[str, dict]], title: str, command: str | None) -> str:
    """``OUT.md``: the paper-style table, then every metric and subset, then provenance."""
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Reproduce with `{command}`.", ""]
    first = labelled[0][1]
    lines += [
        f"**dataset** {first.get('dataset')} · **split** {first.get('split')} · "
        f"**base model** {first.get('base_model')}",
        "",
    ]
    lines += paper_table(labelled)
    relabelled = [{**r, "editor": label} for label, r in labelled]
    full = comparison_markdown(relabelled, title="All metrics").splitlines()
    return "\n".join(lines + ["", "#" + full[0], *full[1:]]) + "\n"


def run_table(
    setting: Path,
    editors: list[EditorSpec],
    out: Path,
    title: str,
    command: str | None,
    extra: list[str],
    run_cli: RunCli,
) -> Path:
    """Test every editor on the setting's data and write ``OUT.md``, ``OUT.json`` and ``OUT_tb/``.

    ``run_cli`` runs one ``mendlight test`` command line and returns its LightningCLI
    (:func:`mendlight.cli.run_cli`, handed in by the ``mendlight`` entry point).
    """
    labelled: list[tuple[str, dict]] = []
    runs: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = _data_section(setting, Path(tmp))
        for spec in editors:
            args = ["test", *[a for c in spec.configs for a in ("-c", str(c))], "--data", str(data), *extra]
            if spec.ckpt is not None:
                args += ["--ckpt_path", str(spec.ckpt)]
            print(f"== mendlight {' '.join(args)}", flush=True)
            argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when both argv and args are given
            try:
                cli = run_cli(args)
            finally:
                sys.argv = argv
            run = Path(cli.trainer.log_dir)
            results = load_results(run)
            labelled.append((spec.label or str(results["editor"]), results))
            runs.append(str(run))
    md = table_markdown(labelled, title, command)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md)
    summary = {
        "title": title,
        "command": command,
        "setting": str(setting),
        "rows": [
            {
                "label": label,
                "editor": r["editor"],
                "run": run,
                "drawdown": task_drawdown(r)[1],
                "subsets": r["subsets"],
                "by_relation": r.get("by_relation", {}),
                "composition": r.get("composition"),
                "created": r.get("created"),
                "machine": r.get("machine"),
            }
            for (label, r), run in zip(labelled, runs, strict=True)
        ],
        "provenance": provenance_lines([{**r, "editor": label} for label, r in labelled]),
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(out.parent / f"{out.name}_tb")) as writer:
        writer.add_text("table", md, 0)
    print("\n" + md)
    return out.with_suffix(".md")


def main(argv: list[str] | None, run_cli: RunCli) -> int:
    """``mendlight table`` (see the module doc); returns the exit status.

    Args:
        argv: the arguments after ``table`` (None: ``sys.argv[1:]``).
        run_cli: runs one ``mendlight`` command line (:func:`mendlight.cli.run_cli`).

    """
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(prog="mendlight table", description=__doc__.split("\n")[0])
    parser.add_argument(
        "-c", "--config", required=True, type=Path, help="the setting config (its data section is used)"
    )
    parser.add_argument(
        "--editor", action="append", required=True, help="[LABEL=]RUN_DIR|CHECKPOINT|CONFIG[::CHECKPOINT]"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="output path without suffix (OUT.md, OUT.json, OUT_tb/)"
    )
    parser.add_argument("--title", default="Editor comparison", help="the table's heading")
    parser.add_argument("--command", default=None, help="the command that reproduces the table (shown)")
    args = parser.parse_args(argv)
    claimed_before = set(RunLogger.claimed)
    try:
        editors = [parse_editor(e) for e in args.editor]
        if not args.config.is_file():
            raise TableError(f"setting config {args.config} does not exist")
        run_table(args.config, editors, args.out, args.title, args.command, extra, run_cli)
    except Exception as exc:
        cause = user_error_behind(exc)
        if cause is None:
            raise
        remove_unused_runs(set(RunLogger.claimed) - claimed_before)
        print(f"mendlight table: error: {cause}", file=sys.stderr)
        return 2
    return 0
