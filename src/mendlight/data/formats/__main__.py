"""Command line: convert a public dataset file to an edit-record JSONL split.

    python -m mendlight.data.formats <format> <input> <out_dir> [--seed N] [--split NAME] [options]

writes ``<out_dir>/<split>.jsonl`` (``split`` defaults to ``train``/``val``/``test`` guessed from the input
name, else the input's stem) and prints the counts: rows read, records written, rows dropped and why.
``<input>`` may be ``hub:<name>[:<split>]``. Errors (a missing field, invalid JSON...) are printed with the
file, line and field, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mendlight.data.formats import FORMATS, load
from mendlight.data.formats.hub import HUB_DATASETS, HUB_PREFIX, HubUnavailableError, parse_hub_ref
from mendlight.data.records import RecordError, write_records

#: CLI flag → converter option (flags not given are not passed, so each format keeps its defaults).
_OPTION_FLAGS = {
    "seed": "seed",
    "n_loc": "n_loc",
    "nq": "nq",
    "corpus": "corpus",
    "tokenizer": "tokenizer",
    "text_split": "split",
    "min_words": "min_words",
    "loc_style": "loc_style",
    "edit_from": "edit_from",
    "repo": "repo",
}
_SPLIT_WORDS = (("train", "train"), ("test", "test"), ("dev", "val"), ("valid", "val"), ("eval", "val"))


def guess_split(source: str) -> str:
    """The output split of a source: ``train``, ``val`` or ``test`` from its name, else its stem."""
    if source.startswith(HUB_PREFIX):
        hub_name, split = parse_hub_ref(source)
        name = split or (HUB_DATASETS[hub_name].split if hub_name in HUB_DATASETS else hub_name)
    else:
        name = Path(source).stem
    lowered = name.lower()
    for word, split_name in _SPLIT_WORDS:
        if word in lowered:
            return split_name
    return "val" if lowered == "val" else name


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mendlight.data.formats``."""
    parser = argparse.ArgumentParser(
        prog="python -m mendlight.data.formats",
        description="Convert a public model-editing dataset file to edit records (JSONL).",
    )
    parser.add_argument("format", choices=sorted(FORMATS), help="the input format")
    parser.add_argument("input", help="the input file, or hub:<name>[:<split>]")
    parser.add_argument("out_dir", help="directory for <split>.jsonl")
    parser.add_argument("--split", help="output split name (default: guessed from the input name)")
    parser.add_argument("--seed", type=int, help="seed of sampled targets, flips and locality (default 0)")
    parser.add_argument(
        "--n-loc", type=int, help="locality items per record (zsre-kilt, fever-kilt, wikitext)"
    )
    parser.add_argument("--nq", help="zsre-kilt: Natural Questions locality file (or hub:natural_questions)")
    parser.add_argument("--corpus", help="wikitext-10token: locality corpus file (or hub:wikitext)")
    parser.add_argument(
        "--tokenizer", help="wikitext-10token: base model whose tokenizer splits off the target"
    )
    parser.add_argument(
        "--text-split", choices=["tokens", "words", "original"], help="wikitext-10token: split rule"
    )
    parser.add_argument("--min-words", type=int, help="wikitext-10token: minimum words of a corpus passage")
    parser.add_argument(
        "--loc-style", choices=["nq", "easyedit", "rome"], help="zsre-mend: locality question style"
    )
    parser.add_argument(
        "--edit-from", choices=["prediction", "label"], help="fever-kilt: label the coin flips"
    )
    parser.add_argument("--repo", help="hub input: the hub dataset path to load")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the converter; return the exit status (0 on success, 1 on bad input)."""
    args = build_parser().parse_args(argv)
    options = {
        opt: getattr(args, flag) for flag, opt in _OPTION_FLAGS.items() if getattr(args, flag) is not None
    }
    try:
        result = load(args.format, args.input, **options)
        if not result.records:
            raise RecordError(f"{args.input}: no records left to write\n{result.summary()}")
        out = write_records(
            Path(args.out_dir) / f"{args.split or guess_split(args.input)}.jsonl", result.records
        )
    except (RecordError, FileNotFoundError, ValueError, HubUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.summary())
    print(f"wrote {len(result.records)} records to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
