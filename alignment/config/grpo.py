"""The ``grpo`` section: GRPO with a verifiable reward (the gold judge), with TRL's ``GRPOConfig`` names."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.base import Section
from alignment.config.training import SamplingTrainingSection


class GoldRewards(Section):
    """The gold judge's reward for each kind of answer (TruthRL's ternary reward by default)."""

    correct: float = Field(1.0, description="Reward of a right answer.")
    idk: float = Field(0.0, description="Reward of an abstention ('I don't know' or another abstain phrase).")
    wrong: float = Field(-1.0, description="Reward of a wrong answer.")

    @model_validator(mode="after")
    def _right_beats_wrong(self) -> GoldRewards:
        if not self.correct > self.wrong:
            raise PydanticCustomError(
                "gold_rewards",
                "rewards: correct ({correct}) must be above wrong ({wrong}), or GRPO learns to be wrong",
                {"correct": self.correct, "wrong": self.wrong},
            )
        return self

    def of(self, label: str) -> float:
        """The reward of a judged answer's label (``metrics.CORRECT``, ``ABSTAIN`` or ``WRONG``)."""
        return getattr(self, label)


class GRPOSection(SamplingTrainingSection):
    """Online RL with a verifiable reward (TRL ``GRPOTrainer``): a LoRA policy from the SFT model samples answers to
    the preference-role questions, and the gold judge scores them against the questions' accepted answers:
    correct +1, "I don't know" 0, wrong -1 (TruthRL's ternary reward). No reward model is involved."""

    target: ClassVar[str] = "trl.GRPOConfig"

    num_train_epochs: float = Field(2.0, gt=0, description="Passes over the questions.")
    learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate of the AdamW optimizer.")
    start_from: Literal["sft", "base"] = Field(
        "sft",
        description="The model the LoRA policy starts from and is held to by the KL penalty: 'sft' (the SFT model) "
        "or 'base' (the model as given, with no 'I don't know' SFT first: TruthRL's recipe on an instruct model).",
    )
    rewards: GoldRewards = Field(
        GoldRewards(), description="The gold reward of a right answer, an abstention and a wrong one."
    )
    beta: float = Field(
        0.4,
        ge=0,
        description="KL penalty to the starting model (the adapter-disabled policy). TRL's GRPO default is 0 (no KL), "
        "which lets the policy drift from what the starting model knows; docs/policies.md has what each policy's "
        "beta does on the tiny world.",
    )

    def own_fields(self) -> set[str]:
        return {"start_from", "rewards"}
