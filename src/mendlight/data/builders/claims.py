"""The embedded claim dataset: true/false fact-checking claims for the FEVER-style classification setting.

Every fact of the embedded fact tables (:func:`~mendlight.data.builders.facts.collect_facts`) gives two
claims: the true one ("The capital of France is Paris.", gold label ``"true"``) and a counterfactual one
with a seeded random other value of the same relation ("The capital of France is Rome.", gold ``"false"``),
so the labels are balanced exactly, in every split and relation. One claim is one classification record
(``task="classification"``):

* ``prompt``: the claim in a seeded random *training* claim template (:data:`CLAIM_TEMPLATES`);
* ``target_true``: its gold label;
* ``target_new``: the gold label flipped with probability ``flip_prob`` (0.5, seeded per record). As in the
  paper's FEVER setting (docs/algorithm.md §5.3, y_e ~ Bernoulli(0.5)) about half of the edits therefore
  ask the model to *keep* the gold label. The paper flips the fact-checker's own *prediction*; these
  records are model-free and flip the gold label instead, which matches when the base classifier is the
  gold-trained one (:mod:`mendlight.models.factcheck`) and predicts the gold label;
* ``rephrases``: the same claim in the other training templates (train split) or in the *held-out*
  templates only (val/test), as for the facts;
* ``locality``: claims about other subjects of the same split with their gold labels, alternating unrelated
  claims (other relations) and same-relation neighbours in the edit's own template, with both labels.

The claims cover the six original fact relations (:data:`CLAIM_RELATIONS`: ``capital``, ``official_language``,
``currency``, ``continent``, ``subregion``, ``city_country`` with the 1,000 most populous unambiguous cities),
not the fact dataset's newer relations. Splits are the facts' subject-disjoint splits
(:func:`~mendlight.data.builders.facts.assign_split`; ``split_by="relation"`` is not offered). Builds
are deterministic and cached by content hash under ``cache_root()/"data"/"claims-<hash>"``::

    python -m mendlight.data.builders.claims --seed 0
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import hashlib
import json
import random
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mendlight.data.builders import facts as _facts
from mendlight.data.builders.facts import (
    FactOptions,
    assign_split,
    collect_facts,
    package_versions,
)
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
from mendlight.data.builders.templates import CLAIM_TEMPLATES
from mendlight.data.records import CLASS_LABELS, EditRecord, LocalityItem, read_records

BUILDER_VERSION = "1"
TRUE, FALSE = "true", "false"
#: The relations that have claim templates: the claims are made of these relations' facts only.
CLAIM_RELATIONS: tuple[str, ...] = tuple(CLAIM_TEMPLATES)
RELATIONS = CLAIM_RELATIONS


@dataclass(frozen=True)
class ClaimOptions(FactOptions):
    """Options of the claim builder: the fact builder's options plus the edit-label flip probability.

    Attributes:
        n_cities: number of ``city_country`` facts (1,000 here, as before the fact dataset grew).
        flip_prob: probability that a record's ``target_new`` is the flipped gold label
            (docs/algorithm.md §5.3: 0.5).

    """

    n_cities: int = 1000
    flip_prob: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError("flip_prob must lie in [0, 1]")
        if self.split_by != "subject":
            raise ValueError("the claim builder splits by subject only (split_by='subject')")

    def fact_options(self) -> FactOptions:
        """Return the fact-builder part of the options (shares the facts' cached tables)."""
        return FactOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(FactOptions)})


@dataclass(frozen=True, order=True)
class Claim:
    """One claim: a subject, a relation, the stated value and the gold label of the statement."""

    relation: str
    subject: str
    value: str
    label: str  # "true" or "false"


def flip_label(label: str) -> str:
    """Return the other class label (``"true"`` <-> ``"false"``)."""
    return FALSE if label == TRUE else TRUE


def make_claims(facts: dict[str, dict[str, str]], seed: int) -> list[Claim]:
    """Turn fact tables into claims: per fact the true claim and one seeded counterfactual (same relation).

    Args:
        facts: ``relation -> {subject: true value}`` (:func:`collect_facts`).
        seed: seed of the counterfactual values.

    Returns:
        The claims of the relations of :data:`CLAIM_RELATIONS`, sorted; facts whose relation has no other
        value are skipped.

    """
    claims: list[Claim] = []
    for rel, table in facts.items():
        if rel not in CLAIM_TEMPLATES:
            continue
        pool = sorted(set(table.values()))
        for subj, true in table.items():
            others = [v for v in pool if v != true]
            if not others:
                continue
            false = random.Random(_facts._stable_int("claims-false", seed, rel, subj)).choice(others)
            claims += [Claim(rel, subj, true, TRUE), Claim(rel, subj, false, FALSE)]
    return sorted(claims)


def make_claim_records(
    facts: dict[str, dict[str, str]], seed: int, options: ClaimOptions
) -> dict[str, list[EditRecord]]:
    """Turn fact tables into classification edit records, split by subject (see the module doc).

    Args:
        facts: ``relation -> {subject: true value}`` (:func:`collect_facts`).
        seed: seed of every random choice (splits, counterfactual values, templates, flips, locality).
        options: builder options.

    Returns:
        ``split -> records``, each split in a seeded order that mixes relations and labels.

    """
    claims = make_claims(facts, seed)
    split_of = {c.subject: assign_split(c.subject, seed, options) for c in claims}
    index: dict[tuple[str, str, str], list[tuple[str, str]]] = defaultdict(list)
    for c in claims:  # sorted claims: every list is sorted by subject, one entry per subject
        index[split_of[c.subject], c.relation, c.label].append((c.subject, c.value))
    splits: dict[str, list[EditRecord]] = {split: [] for split in SPLITS}
    for c in claims:
        split = split_of[c.subject]
        rid = f"{c.relation}/{c.subject}/{c.label}"
        rng = random.Random(_facts._stable_int("claims-record", seed, rid))
        train_t, heldout_t = CLAIM_TEMPLATES[c.relation]["train"], CLAIM_TEMPLATES[c.relation]["heldout"]
        template = rng.choice(train_t)
        flipped = rng.random() < options.flip_prob
        rephrase_t = [t for t in train_t if t != template] if split == "train" else heldout_t
        splits[split].append(
            EditRecord(
                prompt=template.format(s=c.subject, o=c.value),
                target_new=flip_label(c.label) if flipped else c.label,
                target_true=c.label,
                rephrases=[t.format(s=c.subject, o=c.value) for t in rephrase_t],
                locality=_locality(rng, index, split, c, options.n_locality, template),
                subject=c.subject,
                relation=c.relation,
                id=rid,
                meta={
                    "value": c.value,
                    "true_value": facts[c.relation][c.subject],
                    "flipped": flipped,
                    "templates": "train" if split == "train" else "heldout",
                    "source": _facts._SOURCES[c.relation],
                },
                task="classification",
            )
        )
    for records in splits.values():
        records.sort(key=lambda r: (_facts._stable_int("claims-order", seed, r.id), r.id))
    return splits


def _locality(
    rng: random.Random,
    index: dict[tuple[str, str, str], list[tuple[str, str]]],
    split: str,
    claim: Claim,
    n: int,
    template: str,
) -> list[LocalityItem]:
    """Pick ``n`` claims about other subjects of the split, with their gold labels.

    Even positions are unrelated claims (another relation, a random training template), odd positions are
    neighbours (the same relation in the edit's own template), so an editor learns not to flip a whole
    relation. Labels alternate from a random start, so both labels occur among the locality items. When a
    kind or a label runs out the other fills in; a relation is drawn before a claim, so the many city claims
    do not crowd out the country relations.
    """
    chosen: list[tuple[str, str, str, str]] = []  # (relation, subject, value, label)
    first = rng.randrange(2)

    def n_left(rel: str, label: str) -> int:
        entries = index.get((split, rel, label), [])
        i = bisect.bisect_left(entries, (claim.subject,))
        own = i < len(entries) and entries[i][0] == claim.subject
        return len(entries) - own - sum(c[0] == rel and c[3] == label for c in chosen)

    def pick(neighbour: bool, label: str) -> bool:
        live = [r for r in RELATIONS if (r == claim.relation) == neighbour and n_left(r, label) > 0]
        if not live:
            return False
        rel = rng.choice(live)
        entries = index[split, rel, label]
        while True:  # rejection sampling; at least one candidate is left
            subj, value = rng.choice(entries)
            if subj != claim.subject and (rel, subj, value, label) not in chosen:
                chosen.append((rel, subj, value, label))
                return True

    while len(chosen) < n:
        neighbour = len(chosen) % 2 == 1
        label = CLASS_LABELS[(len(chosen) + first) % 2]
        other = flip_label(label)
        tries = [(neighbour, label), (neighbour, other), (not neighbour, label), (not neighbour, other)]
        if not any(pick(*t) for t in tries):
            break
    return [
        LocalityItem(
            (template if rel == claim.relation else rng.choice(CLAIM_TEMPLATES[rel]["train"])).format(
                s=subj, o=value
            ),
            label,
        )
        for rel, subj, value, label in chosen
    ]


def _cache_key(seed: int, options: ClaimOptions) -> dict:
    templates = json.dumps(CLAIM_TEMPLATES, sort_keys=True).encode("utf-8")
    return {
        "builder": "claims",
        "builder_version": BUILDER_VERSION,
        "facts_builder_version": _facts.BUILDER_VERSION,
        "seed": seed,
        "options": dataclasses.asdict(options),
        "templates_sha256": hashlib.sha256(templates).hexdigest()[:16],
        "packages": package_versions(),
    }


def _options(options: dict[str, object]) -> ClaimOptions:
    return parse_options(ClaimOptions, options, "claim")


def claims_hash(seed: int = 0, **options: object) -> str:
    """Return the content hash naming a claim build (builder versions, options, templates, seed, packages).

    Args:
        seed: the build seed.
        **options: :class:`ClaimOptions` fields.

    """
    return content_hash(_cache_key(seed, _options(options)))


def build_claims(
    out_dir: Path | str | None = None, *, seed: int = 0, force: bool = False, **options: object
) -> Path:
    """Build the claim dataset (or reuse a complete build) and return its directory.

    The directory holds ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` and ``manifest.json`` (counts per
    split, relation and label, flip counts, options, versions, hash); it is written to a temporary sibling
    and moved into place atomically, like :func:`~mendlight.data.builders.facts.build_facts`.

    Args:
        out_dir: destination; defaults to ``cache_root()/"data"/"claims-<hash>"``.
        seed: seed of the splits, counterfactual values, templates, label flips and locality picks.
        force: rebuild even if ``out_dir`` already holds a complete build with the same hash.
        **options: :class:`ClaimOptions` fields (the fact options and ``flip_prob``).

    Returns:
        The directory of the build.

    Raises:
        TypeError: for an unknown option.
        FileExistsError: if ``out_dir`` exists and holds files that are not a claim build.

    """
    opts = _options(options)
    digest = claims_hash(seed, **options)
    target = build_dir("claims", digest, out_dir)
    if not force and is_complete_build(target, digest):
        return target
    check_replaceable(target, "claim")
    splits = make_claim_records(collect_facts(opts.fact_options()), seed, opts)
    counts: dict[str, dict[str, dict[str, int]]] = {
        split: {rel: dict.fromkeys(CLASS_LABELS, 0) for rel in RELATIONS} for split in SPLITS
    }
    for split, recs in splits.items():
        for r in recs:
            counts[split][r.relation][r.target_true] += 1
    manifest = {
        **_cache_key(seed, opts),
        "hash": digest,
        "counts": counts,
        "flipped": {split: sum(r.meta["flipped"] for r in recs) for split, recs in splits.items()},
        "total": sum(len(recs) for recs in splits.values()),
        "templates": CLAIM_TEMPLATES,
    }
    return write_build(target, splits, manifest, "claim")


def records_to_pairs(records: list[EditRecord], *, with_rephrases: bool = False) -> list[tuple[str, int]]:
    """Return the plain ``(claim, gold label)`` pairs of claim records (label 1 = true, 0 = false).

    Args:
        records: classification records (:func:`build_claims`).
        with_rephrases: also give every rephrase (train: the other training templates; val/test: the held-out
            templates) with the record's gold label.

    """
    pairs: list[tuple[str, int]] = []
    for r in records:
        label = int(r.target_true == TRUE)
        pairs.append((r.prompt, label))
        if with_rephrases:
            pairs += [(text, label) for text in r.rephrases]
    return pairs


def claim_pairs(
    split: str,
    *,
    build_dir: Path | str | None = None,
    seed: int = 0,
    with_rephrases: bool = False,
    **options: object,
) -> list[tuple[str, int]]:
    """Return the plain ``(claim, label)`` pairs of one split, for fine-tuning or scoring a fact-checker.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        build_dir: a claim build directory; by default the cached build for ``seed`` and ``options``.
        seed: the build seed (used when ``build_dir`` is not given).
        with_rephrases: also give each claim in its other templates (see :func:`records_to_pairs`).
        **options: :class:`ClaimOptions` fields (used when ``build_dir`` is not given).

    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    path = Path(build_dir) if build_dir is not None else build_claims(seed=seed, **options)
    return records_to_pairs(read_records(path / f"{split}.jsonl"), with_rephrases=with_rephrases)


def main(argv: list[str] | None = None) -> int:
    """Build the claim dataset from the command line and print the counts per split, relation and label."""
    parser = argparse.ArgumentParser(
        prog="python -m mendlight.data.builders.claims", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: the mendlight cache)"
    )
    parser.add_argument("--seed", type=int, default=0, help="build seed (default: 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    args = parser.parse_args(argv)
    path = build_claims(args.out, seed=args.seed, force=args.force)
    manifest = read_manifest(path)
    counts = manifest["counts"]
    print(f"claim dataset: {path}  (hash {manifest['hash']}, {manifest['total']} records)")
    print(f"{'relation (true/false)':<22}" + "".join(f"{split:>14}" for split in SPLITS) + f"{'total':>8}")
    for rel in RELATIONS:
        cells = [counts[split][rel] for split in SPLITS]
        row = "".join(f"{c[TRUE]:>9}/{c[FALSE]:<4}" for c in cells)
        print(f"{rel:<22}{row}{sum(c[TRUE] + c[FALSE] for c in cells):>8}")
    totals = [sum(c[TRUE] + c[FALSE] for c in counts[split].values()) for split in SPLITS]
    print(f"{'total':<22}" + "".join(f"{n:>14}" for n in totals) + f"{sum(totals):>8}")
    flips = ", ".join(f"{s} {manifest['flipped'][s]}/{n}" for s, n in zip(SPLITS, totals, strict=True))
    print(f"edit label flipped (target_new != gold): {flips}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
