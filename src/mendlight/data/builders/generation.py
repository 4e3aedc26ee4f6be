"""The generation-editing dataset: passage prefixes with sampled 10-token continuations (offline).

MEND's Wikitext task (docs/algorithm.md §5.4) edits a language model to produce a 10-token continuation y_e
*sampled from a model* after a passage prefix x_e; the unedited model's greedy continuation almost never
equals it. This builder makes the same data from any local corpus (:mod:`mendlight.data.builders.corpus`;
FOLDOC by default, Wikitext-103 with ``corpus="hub:wikitext"`` when the hub is reachable):

1. the corpus passages are shuffled (seeded) and split into edit passages and locality passages (disjoint),
   each divided into train/val/test;
2. every edit passage is cut after a seeded random number of tokens (``prefix_min``..``prefix_max``) of the
   base model's tokenizer: the prefix is the prompt x_e;
3. the sampler model (the base model by default) samples ``n_tokens`` tokens after the prompt at
   ``temperature`` (pure sampling: no top-k/top-p), and the base model gives its greedy continuation;
4. a pair is kept when the greedy continuation differs from the sample and the sampled text tokenises back
   into the same tokens (so the target is exactly ``n_tokens`` tokens); the rest are dropped and counted;
5. each record gets ``n_locality`` locality passages of its split (an empty prompt: scored as text, so the
   drawdown is a perplexity drawdown). Rephrases are left empty: the data module cuts a random prefix of up
   to half of the prompt (docs/algorithm.md §5.4).

Records are ``task="generation"`` with ``meta = {"n_tokens", "greedy", "corpus"}``. Builds are cached by
content hash (corpus passages, models, options, seed) like the fact dataset::

    python -m mendlight.data.builders.generation --model smollm2-135m --corpus foldoc
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from mendlight.data.builders.corpus import DEFAULT_CORPUS, corpus_passages, passages_hash
from mendlight.data.builders.store import (
    SPLITS,
    build_dir,
    check_replaceable,
    content_hash,
    is_complete_build,
    parse_options,
    read_manifest,
    write_build,
)
from mendlight.data.formats.locality import attach_locality
from mendlight.data.records import EditRecord, LocalityItem

BUILDER_VERSION = "1"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationOptions:
    """Options of the generation builder (every one is part of the cache key).

    Attributes:
        n_train: training records to keep (the build stops sampling once every split is full).
        n_val: validation records.
        n_test: test records.
        n_tokens: length of the sampled continuation (paper: 10).
        prefix_min: fewest prompt tokens (special tokens included).
        prefix_max: most prompt tokens.
        temperature: sampling temperature (paper: 1, pure sampling).
        n_locality: locality passages per record.
        loc_fraction: share of the corpus passages reserved for locality.
        min_words: minimum words of a corpus passage (MEND's Wikitext filter: 50).
        batch_size: prompts sampled together.

    """

    n_train: int = 1200
    n_val: int = 100
    n_test: int = 100
    n_tokens: int = 10
    prefix_min: int = 24
    prefix_max: int = 56
    temperature: float = 1.0
    n_locality: int = 2
    loc_fraction: float = 0.25
    min_words: int = 50
    batch_size: int = 32

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_val, self.n_test, self.n_tokens, self.batch_size) < 1:
            raise ValueError("n_train, n_val, n_test, n_tokens and batch_size must be at least 1")
        if not 2 <= self.prefix_min <= self.prefix_max:
            raise ValueError("need 2 <= prefix_min <= prefix_max")
        if self.temperature <= 0 or not 0 < self.loc_fraction < 1 or self.n_locality < 0:
            raise ValueError("temperature must be > 0, loc_fraction in (0, 1) and n_locality >= 0")

    def wanted(self, split: str) -> int:
        """Records wanted in ``split``."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}[split]


def _options(options: dict[str, object]) -> GenerationOptions:
    return parse_options(GenerationOptions, options, "generation")


def _model_identity(ref: str) -> dict:
    from mendlight.models.loading import load_base_config

    config = load_base_config(ref)
    return {"ref": ref, "config": content_hash(config.to_dict())}


def _cache_key(model: str, sampler: str, corpus: str, passages: list[str], seed: int, opts) -> dict:
    return {
        "builder": "generation",
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "options": dataclasses.asdict(opts),
        "model": _model_identity(model),
        "sampler": _model_identity(sampler),
        "corpus": corpus,
        "corpus_hash": passages_hash(passages),
    }


def split_passages(
    passages: list[str], seed: int, opts: GenerationOptions
) -> dict[str, dict[str, list[str]]]:
    """Shuffle the passages and split them into ``{"edit"|"loc": {split: passages}}``, all disjoint.

    Edit passages are divided in proportion to the records wanted per split (with room for the drops);
    locality passages in the same proportion.
    """
    order = list(passages)
    random.Random(f"{seed}/generation/passages").shuffle(order)
    n_loc = max(len(SPLITS), int(len(order) * opts.loc_fraction))
    pools = {"loc": order[:n_loc], "edit": order[n_loc:]}
    total = sum(opts.wanted(s) for s in SPLITS)
    out: dict[str, dict[str, list[str]]] = {}
    for kind, pool in pools.items():
        out[kind], start = {}, 0
        for i, split in enumerate(SPLITS):
            end = len(pool) if i == len(SPLITS) - 1 else start + round(len(pool) * opts.wanted(split) / total)
            out[kind][split] = pool[start:end]
            start = end
    return out


def _prompt(tok, passage: str, n_prefix: int) -> tuple[str, list[int]] | None:
    """The passage's first tokens as text (cut at a token boundary) and its ids as the model reads them."""
    enc = tok(passage, add_special_tokens=False, return_offsets_mapping=True)
    specials = len(tok("", add_special_tokens=True)["input_ids"])
    n_text = n_prefix - specials
    if n_text < 1 or len(enc["input_ids"]) <= n_text:
        return None
    text = passage[: enc["offset_mapping"][n_text - 1][1]]
    return text, list(tok(text, add_special_tokens=True)["input_ids"])


@torch.no_grad()
def _continue(model, ids: list[list[int]], n_tokens: int, temperature: float | None, seed: int):
    """``n_tokens`` tokens after each (equal-length) prompt: sampled at ``temperature``, or greedy if None."""
    from transformers import GenerationConfig

    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    config = GenerationConfig(
        max_new_tokens=n_tokens,
        min_new_tokens=n_tokens,
        pad_token_id=model.config.eos_token_id,
        **(sampling if temperature is not None else {"do_sample": False}),
    )
    inputs = torch.tensor(ids)
    torch.manual_seed(seed)
    out = model.generate(inputs, attention_mask=torch.ones_like(inputs), generation_config=config)
    return out[:, inputs.shape[1] :].tolist()


def make_generation_records(
    model_ref: str,
    sampler_ref: str,
    pools: dict[str, dict[str, list[str]]],
    seed: int,
    opts: GenerationOptions,
    corpus: str,
    progress: bool = True,
) -> tuple[dict[str, list[EditRecord]], dict[str, int]]:
    """Sample the edit records of every split (see the module doc); returns records and drop counts."""
    from tqdm.auto import tqdm

    from mendlight.models.loading import load_base_model, load_tokenizer

    tok = load_tokenizer(model_ref)
    if len(load_tokenizer(sampler_ref)) != len(tok):
        raise ValueError(
            f"the sampler {sampler_ref!r} must share the tokenizer of the base model {model_ref!r}"
        )
    model = load_base_model(model_ref)
    sampler = model if sampler_ref == model_ref else load_base_model(sampler_ref)
    drops = {
        "passage too short for its prefix": 0,
        "greedy equals sample": 0,
        "target does not round-trip": 0,
    }
    splits: dict[str, list[EditRecord]] = {}
    for split in SPLITS:
        rng = random.Random(f"{seed}/generation/{split}")
        candidates = []
        for i, passage in enumerate(pools["edit"][split]):
            cut = _prompt(tok, passage, rng.randint(opts.prefix_min, opts.prefix_max))
            if cut is None:
                drops["passage too short for its prefix"] += 1
            else:
                candidates.append((i, *cut))
        by_length: dict[int, list[tuple[int, str, list[int]]]] = {}
        for cand in candidates:
            by_length.setdefault(len(cand[2]), []).append(cand)
        batches = [
            g[j : j + opts.batch_size]
            for _, g in sorted(by_length.items())
            for j in range(0, len(g), opts.batch_size)
        ]
        random.Random(f"{seed}/generation/{split}/batches").shuffle(batches)
        kept: list[EditRecord] = []
        bar = tqdm(total=opts.wanted(split), desc=f"sampling {split}", disable=not progress, unit="edit")
        for b, batch in enumerate(batches):
            if len(kept) >= opts.wanted(split):
                break
            ids = [c[2] for c in batch]
            sampled = _continue(sampler, ids, opts.n_tokens, opts.temperature, seed * 100_003 + b)
            greedy = _continue(model, ids, opts.n_tokens, None, 0)
            for (i, prompt, _), sample, best in zip(batch, sampled, greedy, strict=True):
                target = tok.decode(sample)
                if sample == best:
                    drops["greedy equals sample"] += 1
                elif list(tok(target, add_special_tokens=False)["input_ids"]) != sample:
                    drops["target does not round-trip"] += 1
                elif len(kept) < opts.wanted(split):
                    kept.append(
                        EditRecord(
                            prompt=prompt,
                            target_new=target,
                            id=f"gen/{split}/{i}",
                            meta={"n_tokens": opts.n_tokens, "greedy": tok.decode(best), "corpus": corpus},
                            task="generation",
                        )
                    )
                    bar.update(1)
        bar.close()
        if len(kept) < opts.wanted(split):
            log.warning(
                "generation builder: only %d of the %d %s records wanted were kept (drops so far: %s); "
                "use a larger corpus or a lower n_%s",
                len(kept),
                opts.wanted(split),
                split,
                drops,
                split,
            )
        kept.sort(key=lambda r: r.id)
        pool = [LocalityItem("", p) for p in pools["loc"][split]]
        splits[split] = attach_locality(kept, pool, opts.n_locality, seed)
    return splits, drops


def build_generation(
    out_dir: Path | str | None = None,
    *,
    model: str = "smollm2-135m",
    sampler: str | None = None,
    corpus: str = DEFAULT_CORPUS,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    **options: object,
) -> Path:
    """Build the generation dataset (or reuse a complete build) and return its directory.

    Args:
        out_dir: destination; defaults to ``cache_root()/"data"/"generation-<hash>"``.
        model: the base model whose tokenizer cuts the prompts and whose greedy output must differ.
        sampler: the model the continuations are sampled from (default: ``model``); same tokenizer.
        corpus: a corpus reference (:func:`~mendlight.data.builders.corpus.corpus_passages`).
        seed: seed of the passage split, the prefix lengths, the sampling and the locality picks.
        force: rebuild even if a complete build with the same hash exists.
        progress: show progress bars while sampling.
        **options: :class:`GenerationOptions` fields.

    Returns:
        The directory of the build.

    Raises:
        TypeError: for an unknown option.
        CorpusError: if the corpus is missing (the message says how to fetch it).
        ValueError: if the corpus has too few passages for the records wanted.

    """
    opts = _options(options)
    sampler = sampler or model
    passages = corpus_passages(corpus, opts.min_words)
    key = _cache_key(model, sampler, corpus, passages, seed, opts)
    digest = content_hash(key)
    target = build_dir("generation", digest, out_dir)
    if not force and is_complete_build(target, digest):
        return target
    check_replaceable(target, "generation")
    pools = split_passages(passages, seed, opts)
    for split in SPLITS:
        if len(pools["edit"][split]) < opts.wanted(split) or not pools["loc"][split]:
            raise ValueError(
                f"corpus {corpus!r} has {len(passages)} passages of at least {opts.min_words} words: too few "
                f"for {opts.wanted(split)} {split} records; lower n_train/n_val/n_test or use a larger corpus"
            )
    splits, drops = make_generation_records(model, sampler, pools, seed, opts, corpus, progress)
    manifest = {
        **key,
        "hash": digest,
        "counts": {split: len(records) for split, records in splits.items()},
        "passages": {kind: {s: len(p) for s, p in pool.items()} for kind, pool in pools.items()},
        "dropped": drops,
        "total": sum(len(records) for records in splits.values()),
    }
    return write_build(target, splits, manifest, "generation")


def main(argv: list[str] | None = None) -> int:
    """Build the generation dataset from the command line and print its counts."""
    parser = argparse.ArgumentParser(
        prog="python -m mendlight.data.builders.generation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: the cache)")
    parser.add_argument(
        "--model", default="smollm2-135m", help="base model reference (default: smollm2-135m)"
    )
    parser.add_argument("--sampler", default=None, help="model to sample from (default: the base model)")
    parser.add_argument("--corpus", default=DEFAULT_CORPUS, help="corpus: foldoc, a file, or hub:wikitext")
    parser.add_argument("--seed", type=int, default=0, help="build seed (default: 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    args = parser.parse_args(argv)
    path = build_generation(
        args.out, model=args.model, sampler=args.sampler, corpus=args.corpus, seed=args.seed, force=args.force
    )
    manifest = read_manifest(path)
    counts = ", ".join(f"{s} {n}" for s, n in manifest["counts"].items())
    drops = ", ".join(f"{reason} {n}" for reason, n in manifest["dropped"].items())
    print(f"generation dataset: {path}  (hash {manifest['hash']}, {manifest['total']} records: {counts})")
    print(f"dropped: {drops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
