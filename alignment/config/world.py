"""The ``world`` section: the synthetic world's entities, facts and splits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.base import MAX_SEED, Section

Share = Annotated[float, Field(ge=0)]


class WorldConfig(Section):
    """The synthetic world: entities, their facts, and how they are split."""

    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the world generator; a different seed is a different world."
    )
    n_known: int = Field(150, ge=6, description="Entities whose facts are in the pretraining corpus.")
    n_unknown: int = Field(150, ge=6, description="Entities never seen in pretraining.")
    known_split: tuple[Share, Share, Share] = Field(
        (0.4, 0.3, 0.3),
        description="Shares (>= 0, relative to their sum) of known entities for SFT demos, preference pairs, "
        "evaluation.",
    )
    unknown_split: tuple[Share, Share, Share] = Field(
        (0.3, 0.4, 0.3),
        description="Shares (>= 0, relative to their sum) of unknown entities for (mismatched) SFT demos, preference "
        "pairs, evaluation.",
    )
    unknown_demonstrations: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of the unknown SFT-role entities whose questions are in the demonstrations, answered "
        "'I don't know' (a labeler who knows what the model knows) or, with mismatch, with their true facts.",
    )
    mismatch: bool = Field(
        False,
        description="Mismatched knowledge: demonstrations about unknown entities give their true facts instead "
        "of 'I don't know' (a labeler who knows more than the model).",
    )
    idk_noise: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of the known entities' demonstrations answered 'I don't know' anyway (a labeler who "
        "sometimes abstains whatever the model knows): it puts abstention within SFT's reach for online RL.",
    )
    qa_in_pretraining: bool = Field(
        True,
        description="The pretraining corpus also holds the SFT-role known entities' questions with their answers, as "
        "chat exchanges (mixed training, Allen-Zhu & Li 2023), so pretraining teaches how a question about a named "
        "entity draws on its facts; the held-out and preference entities are never asked about there. Off, SFT must "
        "learn that from 60 entities' demonstrations, and on some worlds it memorises them instead (issue 24).",
    )
    labeller: Literal["idk", "confident"] = Field(
        "idk",
        description="Who labels the preference pairs about unknown entities: 'idk' prefers \"I don't know\" to a "
        "wrong answer; 'confident' (labellers who reward confidence) prefers the confident wrong answer.",
    )
    wrong_answers_per_unknown: int = Field(2, ge=1, description="'I don't know' > wrong pairs per unknown question.")

    def role_sizes(self, known: bool) -> tuple[int, int, int]:
        """Entities per role (SFT, preference pairs, evaluation): how the world splits them (``build_world``)."""
        count, shares = (self.n_known, self.known_split) if known else (self.n_unknown, self.unknown_split)
        total = sum(shares)
        a = round(count * shares[0] / total)
        b = round(count * shares[1] / total)
        return a, b, count - a - b

    @model_validator(mode="after")
    def _every_role_has_entities(self) -> WorldConfig:
        for known, split in ((True, "known_split"), (False, "unknown_split")):
            if not sum(getattr(self, split)):
                raise PydanticCustomError(
                    "zero_split", "{split} is all zeros: give each role a share", {"split": split}
                )
            needed = ("sft", "pref", "eval") if known or self.unknown_demonstrations > 0 else ("pref", "eval")
            sizes = dict(zip(("sft", "pref", "eval"), self.role_sizes(known), strict=True))
            empty = [role for role in needed if sizes[role] < 1]
            if empty:
                raise PydanticCustomError(
                    "empty_role",
                    "{split} {shares} of {count} entities leaves no entity for {roles}",
                    {
                        "split": split,
                        "shares": list(getattr(self, split)),
                        "count": self.n_known if known else self.n_unknown,
                        "roles": ", ".join(empty),
                    },
                )
        return self
