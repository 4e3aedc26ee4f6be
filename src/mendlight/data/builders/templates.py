"""Templates of the embedded fact relations: prompts and claims, each split into training and held-out ones.

Validation and test rephrases use only the held-out templates, which no training record ever shows, so
rephrase success measures generalisation to unseen wording. Claims (:data:`CLAIM_TEMPLATES`) exist for the
six original relations only, the relations of the claim dataset.
"""

from __future__ import annotations

#: Prompt templates per relation; ``{s}`` is the subject and the target follows after a space. Every relation
#: has seven ``train`` templates (prompts and train rephrases), exactly one of them the question form
#: ``Q: ...? A:`` that the question-answering dataset ``facts-qa`` prompts with, and three ``heldout`` ones
#: (only val/test rephrases, among them a ``Question: ... Answer:`` form), so ten wordings per relation.
RELATION_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "capital": {
        "train": [
            "The capital of {s} is",
            "{s}'s capital city is",
            "Q: What is the capital of {s}? A:",
            "The city that serves as the capital of {s} is",
            "The capital city of {s} is",
            "The seat of government of {s} is",
            "{s} is governed from its capital,",
        ],
        "heldout": [
            "Question: Which city is the capital of {s}? Answer:",
            "The government of {s} is based in the city of",
            "The national parliament of {s} meets in the capital,",
        ],
    },
    "official_language": {
        "train": [
            "The official language of {s} is",
            "In {s}, the official language is",
            "Q: Which language is official in {s}? A:",
            "{s}'s official language is",
            "The language officially used in {s} is",
            "Laws in {s} are published in",
            "The main official language of {s} is",
        ],
        "heldout": [
            "Question: What language is officially used in {s}? Answer:",
            "Government documents in {s} are written in",
            "The state schools of {s} teach in the official language,",
        ],
    },
    "currency": {
        "train": [
            "The currency of {s} is the",
            "In {s}, people pay with the",
            "Q: What currency is used in {s}? A:",
            "The official currency of {s} is the",
            "The money used in {s} is called the",
            "The legal tender of {s} is the",
            "{s}'s national currency is the",
        ],
        "heldout": [
            "Question: What is the name of the money used in {s}? Answer:",
            "Prices in {s} are given in the national currency, the",
            "Travellers to {s} exchange their money for the local currency, the",
        ],
    },
    "continent": {
        "train": [
            "{s} is located in the continent of",
            "{s} is a country in",
            "Q: On which continent is {s}? A:",
            "The continent where {s} lies is",
            "{s} is part of the continent of",
            "The country of {s} is on the continent of",
            "{s} lies on the continent of",
        ],
        "heldout": [
            "Question: Which continent is {s} part of? Answer:",
            "Geographically, {s} belongs to the continent of",
            "On a world map, you will find {s} in",
        ],
    },
    "subregion": {
        "train": [
            "{s} is a country in the region of",
            "The UN geographic subregion of {s} is",
            "Q: Which world region is {s} in? A:",
            "In the UN's regional grouping, {s} belongs to",
            "The United Nations place {s} in the subregion of",
            "{s} is classified by the UN as part of",
            "The world subregion that includes {s} is",
        ],
        "heldout": [
            "Question: To which subregion of the world does {s} belong? Answer:",
            "Geographers place {s} in the region of",
            "In UN statistics, {s} is counted as part of",
        ],
    },
    "city_country": {
        "train": [
            "{s} is a city in",
            "The city of {s} is located in the country of",
            "Q: In which country is {s}? A:",
            "{s} lies in the country of",
            "The country that contains the city of {s} is",
            "{s} is a city located in the country of",
            "The city of {s} is part of",
        ],
        "heldout": [
            "Question: Which country is the city of {s} in? Answer:",
            "If you travel to {s}, you will be in the country of",
            "People who live in {s} live in the country of",
        ],
    },
    "calling_code": {
        "train": [
            "The international calling code of {s} is",
            "The telephone country code of {s} is",
            "Q: What is the international dialling code of {s}? A:",
            "To phone someone in {s}, you dial the country code",
            "Phone numbers in {s} start with the country code",
            "The country calling code for {s} is",
            "{s}'s international telephone prefix is",
        ],
        "heldout": [
            "Question: Which country code do you dial to call {s}? Answer:",
            "When calling {s} from abroad, you first dial",
            "The dialling code assigned to {s} is",
        ],
    },
    "top_level_domain": {
        "train": [
            "The internet country code top-level domain of {s} is",
            "Websites in {s} often end in",
            "Q: What is the internet domain of {s}? A:",
            "The top-level domain of {s} is",
            "The country code domain assigned to {s} is",
            "{s}'s internet domain is",
            "The two-letter web domain of {s} is",
        ],
        "heldout": [
            "Question: Which top-level domain belongs to {s}? Answer:",
            "Many websites from {s} have addresses ending in",
            "The national domain suffix of {s} is",
        ],
    },
    "currency_code": {
        "train": [
            "The ISO 4217 currency code of {s} is",
            "The three-letter code of the currency of {s} is",
            "Q: What is the currency code of {s}? A:",
            "Banks abbreviate the currency of {s} as",
            "The currency of {s} has the code",
            "On exchange boards, the money of {s} is listed as",
            "{s}'s currency code is",
        ],
        "heldout": [
            "Question: Which three-letter code stands for the currency of {s}? Answer:",
            "In foreign exchange markets, the currency of {s} trades under the code",
            "The standard code for the money of {s} is",
        ],
    },
    "largest_city": {
        "train": [
            "The largest city of {s} is",
            "The most populous city in {s} is",
            "Q: What is the largest city in {s}? A:",
            "{s}'s biggest city is",
            "The city with the most inhabitants in {s} is",
            "The biggest city in {s} by population is",
            "The largest urban centre of {s} is",
        ],
        "heldout": [
            "Question: Which city in {s} has the most people? Answer:",
            "Among all cities in {s}, the one with the largest population is",
            "More people live in one city of {s} than in any other:",
        ],
    },
    "demonym": {
        "train": [
            "A person from {s} is called",
            "The people of {s} are called",
            "Q: What is a person from {s} called? A:",
            "Citizens of {s} are known as",
            "Someone born in {s} is described as",
            "The demonym for people from {s} is",
            "A native of {s} is called",
        ],
        "heldout": [
            "Question: What do you call someone from {s}? Answer:",
            "Residents of {s} call themselves",
            "The word for an inhabitant of {s} is",
        ],
    },
    "official_name": {
        "train": [
            "The official name of {s} is",
            "The full official name of {s} is",
            "Q: What is the official name of {s}? A:",
            "Officially, {s} is called the",
            "In formal documents, {s} is called the",
            "The formal name of the country {s} is",
            "{s}'s official long name is",
        ],
        "heldout": [
            "Question: What is the full formal name of {s}? Answer:",
            "In treaties, {s} signs under its official name, the",
            "The long-form name of {s} is",
        ],
    },
    "name_in_german": {
        "train": [
            "The German name of {s} is",
            "In German, {s} is called",
            "Q: What is {s} called in German? A:",
            "German speakers call {s}",
            "The German word for {s} is",
            "In the German language, the country {s} is called",
            "{s} in German is",
        ],
        "heldout": [
            "Question: How do you say {s} in German? Answer:",
            "On a German map, {s} is written as",
            "A German newspaper refers to {s} as",
        ],
    },
    "name_in_french": {
        "train": [
            "The French name of {s} is",
            "In French, {s} is called",
            "Q: What is {s} called in French? A:",
            "French speakers call {s}",
            "The French word for {s} is",
            "In the French language, the country {s} is called",
            "{s} in French is",
        ],
        "heldout": [
            "Question: How do you say {s} in French? Answer:",
            "On a French map, {s} is written as",
            "A French newspaper refers to {s} as",
        ],
    },
    "name_in_spanish": {
        "train": [
            "The Spanish name of {s} is",
            "In Spanish, {s} is called",
            "Q: What is {s} called in Spanish? A:",
            "Spanish speakers call {s}",
            "The Spanish word for {s} is",
            "In the Spanish language, the country {s} is called",
            "{s} in Spanish is",
        ],
        "heldout": [
            "Question: How do you say {s} in Spanish? Answer:",
            "On a Spanish map, {s} is written as",
            "A Spanish newspaper refers to {s} as",
        ],
    },
    "city_timezone": {
        "train": [
            "The time zone of {s} is",
            "The IANA time zone of the city of {s} is",
            "Q: Which time zone is {s} in? A:",
            "Clocks in {s} follow the time zone",
            "{s} is in the time zone",
            "The tz database zone for {s} is",
            "Local time in {s} is set by the time zone",
        ],
        "heldout": [
            "Question: What is the time zone of the city of {s}? Answer:",
            "Computers in {s} set their clocks to the time zone",
            "The zone that determines the local time of {s} is",
        ],
    },
    "city_us_state": {
        "train": [
            "{s} is a city in the US state of",
            "The city of {s} is located in the state of",
            "Q: In which US state is the city of {s}? A:",
            "The US state that contains {s} is",
            "{s} lies in the American state of",
            "The state where the city of {s} is located is",
            "The city of {s} is part of the state of",
        ],
        "heldout": [
            "Question: Which state of the United States is the city of {s} in? Answer:",
            "If you drive to {s}, you will be in the state of",
            "The city of {s} belongs to the US state of",
        ],
    },
    "county_us_state": {
        "train": [
            "{s} is a county in the US state of",
            "{s} is located in the state of",
            "Q: In which US state is {s}? A:",
            "The state that contains {s} is",
            "{s} lies in the American state of",
            "The US state where {s} is located is",
            "{s} is one of the counties of the state of",
        ],
        "heldout": [
            "Question: Which state of the United States is {s} in? Answer:",
            "The county government of {s} answers to the state of",
            "{s} belongs to the US state of",
        ],
    },
    "airport_code": {
        "train": [
            "The IATA code of {s} is",
            "The three-letter airport code of {s} is",
            "Q: What is the IATA code of {s}? A:",
            "{s} has the IATA airport code",
            "Luggage tags for {s} carry the code",
            "The IATA location identifier of {s} is",
            "Flights to {s} are booked with the airport code",
        ],
        "heldout": [
            "Question: Which three-letter code identifies {s}? Answer:",
            "On boarding passes, {s} appears as",
            "Airlines refer to {s} by the code",
        ],
    },
    "airport_city": {
        "train": [
            "{s} serves the city of",
            "{s} is an airport in the city of",
            "Q: Which city does {s} serve? A:",
            "The city served by {s} is",
            "{s} is located near the city of",
            "Travellers landing at {s} arrive in the city of",
            "The airport called {s} is in",
        ],
        "heldout": [
            "Question: Which city is {s} in? Answer:",
            "Flights into {s} bring passengers to the city of",
            "{s} is the airport of the city of",
        ],
    },
    "airport_country": {
        "train": [
            "{s} is an airport in",
            "{s} is located in the country of",
            "Q: In which country is {s}? A:",
            "The country where {s} is located is",
            "{s} is an airport in the country of",
            "Planes landing at {s} arrive in the country of",
            "{s} lies in the country of",
        ],
        "heldout": [
            "Question: Which country is {s} in? Answer:",
            "Passengers arriving at {s} enter the country of",
            "{s} is one of the airports of",
        ],
    },
    "subdivision_country": {
        "train": [
            "{s} is an administrative region of",
            "{s} is a subdivision of the country of",
            "Q: Which country is {s} a part of? A:",
            "The country that {s} belongs to is",
            "{s} is an administrative division of",
            "The region of {s} lies in the country of",
            "{s} is a province or state of",
        ],
        "heldout": [
            "Question: In which country is the region of {s}? Answer:",
            "The region of {s} is governed as part of",
            "Maps show {s} as a region of",
        ],
    },
    "subdivision_code": {
        "train": [
            "The ISO 3166-2 code of {s} is",
            "The subdivision code of {s} is",
            "Q: What is the ISO 3166-2 code of {s}? A:",
            "{s} has the ISO 3166-2 code",
            "In ISO 3166-2, {s} is coded as",
            "The region of {s} is identified by the ISO code",
            "The official ISO code for the region of {s} is",
        ],
        "heldout": [
            "Question: Which ISO 3166-2 code identifies {s}? Answer:",
            "In the international standard for subdivisions, {s} has the code",
            "Databases record the region {s} under the code",
        ],
    },
    "language_code": {
        "train": [
            "The ISO 639-1 code of {s} is",
            "The two-letter code for the {s} language is",
            "Q: What is the ISO 639-1 code of {s}? A:",
            "{s} has the language code",
            "The language {s} is abbreviated as",
            "In ISO 639-1, the {s} language is coded as",
            "The two-letter language code of {s} is",
        ],
        "heldout": [
            "Question: Which two-letter code stands for the {s} language? Answer:",
            "Web pages written in {s} are tagged with the language code",
            "The standard abbreviation of the {s} language is",
        ],
    },
    "script_code": {
        "train": [
            "The ISO 15924 code of the {s} script is",
            "The four-letter code of the {s} script is",
            "Q: What is the ISO 15924 code of the {s} script? A:",
            "The {s} writing system has the code",
            "In ISO 15924, the {s} script is coded as",
            "The script code for {s} is",
            "Text in the {s} script is tagged with the code",
        ],
        "heldout": [
            "Question: Which four-letter code stands for the {s} script? Answer:",
            "Unicode data label the {s} script with the code",
            "The standard abbreviation of the {s} writing system is",
        ],
    },
    "element_symbol": {
        "train": [
            "The chemical symbol of {s} is",
            "The element {s} has the symbol",
            "Q: What is the chemical symbol of {s}? A:",
            "In chemistry, {s} is written as",
            "The symbol for the element {s} is",
            "On the periodic table, {s} is abbreviated as",
            "The one- or two-letter symbol of {s} is",
        ],
        "heldout": [
            "Question: Which symbol stands for {s} on the periodic table? Answer:",
            "Chemists write {s} with the symbol",
            "In chemical formulas, {s} appears as",
        ],
    },
    "element_number": {
        "train": [
            "The atomic number of {s} is",
            "The element {s} has the atomic number",
            "Q: What is the atomic number of {s}? A:",
            "The number of protons in an atom of {s} is",
            "On the periodic table, {s} has the number",
            "An atom of {s} has this many protons:",
            "The chemical element {s} has atomic number",
        ],
        "heldout": [
            "Question: What is the atomic number of the element {s}? Answer:",
            "Each nucleus of {s} contains this number of protons:",
            "The proton number of {s} is",
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
