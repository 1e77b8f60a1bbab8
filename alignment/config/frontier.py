"""The ``frontier`` section: the P(IK) probe that draws the model's own knowledge frontier (real-facts runs)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from alignment.config.base import MAX_SEED, Section


class FrontierConfig(Section):
    """A linear probe of "the model knows this" (its greedy answer is right) on its hidden state at the end of the
    question (Kadavath et al. 2022's P(IK)), fit on the SFT and preference roles with entity-grouped
    cross-validation, scored on the held-out role. Its scores are the abstention signal of
    ``facts.max_known_abstention`` and draw the frontier every model is placed on."""

    layers: list[Annotated[int, Field(ge=1)]] | None = Field(
        None,
        min_length=1,
        description="Hidden layers the probe may read (1 = the first layer's output); the one with the best "
        "cross-validated AUROC is used. None: every layer.",
    )
    Cs: list[Annotated[float, Field(gt=0)]] = Field(
        [0.001, 0.01, 0.1, 1.0],
        min_length=1,
        description="Inverse L2 strengths tried for the logistic regression (scikit-learn's C, on standardised "
        "features), chosen with the layer by cross-validated AUROC.",
    )
    folds: int = Field(
        5,
        ge=2,
        description="Cross-validation folds over the SFT and preference questions; every question about an entity "
        "is in one fold (so a score never comes from a probe that saw the same country or element).",
    )
    batch_size: int = Field(64, ge=1, description="Questions per forward pass when reading hidden states.")
    bootstrap_samples: int = Field(1000, ge=10, description="Bootstrap resamples behind the frontier's intervals.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the folds and of the bootstrap.")
