"""Templates of the embedded fact relations: prompts and claims, each split into training and held-out ones.

Validation and test rephrases use only the held-out templates, which no training record ever shows, so
rephrase success measures generalisation to unseen wording.
"""

from __future__ import annotations

#: Prompt templates per relation; ``{s}`` is the subject and the target follows after a space.
#: ``train`` templates give prompts (and train rephrases); ``heldout`` ones are only val/test rephrases.
RELATION_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "capital": {
        "train": [
            "The capital of {s} is",
            "{s}'s capital city is",
            "Q: What is the capital of {s}? A:",
            "The city that serves as the capital of {s} is",
        ],
        "heldout": [
            "Question: Which city is the capital of {s}? Answer:",
            "The government of {s} is based in the city of",
        ],
    },
    "official_language": {
        "train": [
            "The official language of {s} is",
            "In {s}, the official language is",
            "Q: Which language is official in {s}? A:",
            "{s}'s official language is",
        ],
        "heldout": [
            "Question: What language is officially used in {s}? Answer:",
            "Government documents in {s} are written in",
        ],
    },
    "currency": {
        "train": [
            "The currency of {s} is the",
            "In {s}, people pay with the",
            "Q: What currency is used in {s}? A:",
            "The official currency of {s} is the",
        ],
        "heldout": [
            "Question: What is the name of the money used in {s}? Answer:",
            "Prices in {s} are given in the national currency, the",
        ],
    },
    "continent": {
        "train": [
            "{s} is located in the continent of",
            "{s} is a country in",
            "Q: On which continent is {s}? A:",
            "The continent where {s} lies is",
        ],
        "heldout": [
            "Question: Which continent is {s} part of? Answer:",
            "Geographically, {s} belongs to the continent of",
        ],
    },
    "subregion": {
        "train": [
            "{s} is a country in the region of",
            "The UN geographic subregion of {s} is",
            "Q: Which world region is {s} in? A:",
            "In the UN's regional grouping, {s} belongs to",
        ],
        "heldout": [
            "Question: To which subregion of the world does {s} belong? Answer:",
            "Geographers place {s} in the region of",
        ],
    },
    "city_country": {
        "train": [
            "{s} is a city in",
            "The city of {s} is located in the country of",
            "Q: In which country is {s}? A:",
            "{s} lies in the country of",
        ],
        "heldout": [
            "Question: Which country is the city of {s} in? Answer:",
            "If you travel to {s}, you will be in the country of",
        ],
    },
}

#: Claim templates per relation (the fact-checking data, :mod:`mendlight.data.builders.claims`): declarative
#: sentences stating that ``{s}`` (the subject) has the value ``{o}``. As above, ``train`` templates give the
#: claims and train rephrases; ``heldout`` ones are only val/test rephrases.
CLAIM_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "capital": {
        "train": [
            "The capital of {s} is {o}.",
            "{o} is the capital of {s}.",
            "{s}'s capital city is {o}.",
            "The city that serves as the capital of {s} is {o}.",
        ],
        "heldout": [
            "The government of {s} is based in the city of {o}.",
            "{s} has {o} as its capital.",
        ],
    },
    "official_language": {
        "train": [
            "The official language of {s} is {o}.",
            "{o} is the official language of {s}.",
            "In {s}, the official language is {o}.",
            "{s}'s official language is {o}.",
        ],
        "heldout": [
            "Government documents in {s} are written in {o}.",
            "People in {s} officially use the {o} language.",
        ],
    },
    "currency": {
        "train": [
            "The currency of {s} is the {o}.",
            "In {s}, people pay with the {o}.",
            "The official currency of {s} is the {o}.",
            "The {o} is the currency of {s}.",
        ],
        "heldout": [
            "Prices in {s} are given in the national currency, the {o}.",
            "The money used in {s} is called the {o}.",
        ],
    },
    "continent": {
        "train": [
            "{s} is located in the continent of {o}.",
            "{s} is a country in {o}.",
            "The continent where {s} lies is {o}.",
            "{o} is the continent that {s} is part of.",
        ],
        "heldout": [
            "Geographically, {s} belongs to the continent of {o}.",
            "On a world map, {s} is found in {o}.",
        ],
    },
    "subregion": {
        "train": [
            "{s} is a country in the region of {o}.",
            "The UN geographic subregion of {s} is {o}.",
            "In the UN's regional grouping, {s} belongs to {o}.",
            "{s} lies in the subregion of {o}.",
        ],
        "heldout": [
            "Geographers place {s} in the region of {o}.",
            "{o} is the world region that includes {s}.",
        ],
    },
    "city_country": {
        "train": [
            "{s} is a city in {o}.",
            "The city of {s} is located in the country of {o}.",
            "{s} lies in the country of {o}.",
            "{o} is the country where the city of {s} is located.",
        ],
        "heldout": [
            "If you travel to {s}, you will be in the country of {o}.",
            "The city of {s} belongs to {o}.",
        ],
    },
}
