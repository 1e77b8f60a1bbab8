"""The ``eval``, ``judge`` and ``probe`` sections: how models are evaluated, answers judged and knowledge probed."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.base import MAX_SEED, Section


class JudgeConfig(Section):
    """How an answer is judged against a question's accepted answers (the gold judge)."""

    abstain_phrases: list[str] = Field(
        ["I don't know", "I do not know", "I'm not sure", "I am not sure", "I cannot answer"],
        description="An answer that starts with one of these (or the 'I don't know' answer of the data) "
        "abstains. Compared after normalisation.",
    )
    first_sentence: bool = Field(
        True, description="Judge only the answer's first sentence (real models add explanations)."
    )
    match: Literal["exact", "contains"] = Field(
        "exact",
        description="'exact': the (first sentence of the) answer is an accepted answer, after normalisation. "
        "'contains': an accepted answer appears in it as whole words, so a real model's 'The capital of France is "
        "Paris.' is correct ('Nigeria' does not contain 'Niger').",
    )
    stop_at_first_sentence: bool = Field(
        False,
        description="Stop generating an answer (probe and evaluation) once its first sentence has ended, and keep "
        "only that sentence: what the judge reads (needs first_sentence). Saves the generation a real model spends "
        "explaining after it answered; answers, their KL and reward scores are then of the first sentence.",
    )

    @field_validator("abstain_phrases")
    @classmethod
    def _phrases_can_match(cls, phrases: list[str]) -> list[str]:
        for i, phrase in enumerate(phrases):
            if not any(ch.isalnum() for ch in phrase):
                raise PydanticCustomError(
                    "abstain_phrase",
                    "abstain_phrases[{i}] '{phrase}' has no letter or digit: after normalisation it matches nothing",
                    {"i": i, "phrase": phrase},
                )
        return phrases

    @model_validator(mode="after")
    def _stop_needs_first_sentence(self) -> JudgeConfig:
        if self.stop_at_first_sentence and not self.first_sentence:
            raise PydanticCustomError(
                "judge_stop",
                "stop_at_first_sentence keeps only the first sentence, but first_sentence is false: the judge would "
                "read a cut answer as whole",
                {},
            )
        return self


class EvalConfig(Section):
    """The evaluation on held-out data: generation, the sampling sweep and bootstrap intervals."""

    max_new_tokens: int = Field(8, ge=1, description="Longest generated answer, in tokens.")
    sweep_temperatures: list[Annotated[float, Field(ge=0)]] = Field(
        [0.0, 0.5, 1.0, 1.5], description="Sampling sweep temperatures, each >= 0 (0: greedy); []: no sweep."
    )
    sweep_top_ps: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        [1.0, 0.9], min_length=1, description="Sampling sweep top-p values, each in [0, 1] (1: no cut)."
    )
    sweep_samples: int = Field(5, ge=1, description="Samples per question at each sampled sweep point.")
    batch_size: int = Field(256, ge=1, description="Questions per generation / scoring batch.")
    bootstrap_samples: int = Field(1000, ge=10, description="Bootstrap resamples behind each 95% interval.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the bootstrap and of sampled generations.")


class ProbeConfig(Section):
    """Knowledge probe: greedy plus ``samples`` answers at ``temperature`` per question."""

    samples: int = Field(8, ge=1, description="Sampled answers per question (besides the greedy one).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the probe's samples.")
    max_new_tokens: int = Field(8, ge=1, description="Longest probe answer, in tokens.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the probe's samples.")
