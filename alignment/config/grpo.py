"""The ``grpo`` section: GRPO with a verifiable reward (the gold judge), with TRL's ``GRPOConfig`` names."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from alignment.config.training import SamplingTrainingSection


class GRPOSection(SamplingTrainingSection):
    """Online RL with a verifiable reward (TRL ``GRPOTrainer``): a LoRA policy from the SFT model samples answers to
    the preference-role questions, and the gold judge scores them against the questions' accepted answers:
    correct +1, "I don't know" 0, wrong -1 (TruthRL's ternary reward). No reward model is involved."""

    target: ClassVar[str] = "trl.GRPOConfig"

    num_train_epochs: float = Field(2.0, gt=0, description="Passes over the questions.")
    learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate of the AdamW optimizer.")
    beta: float = Field(
        0.4,
        ge=0,
        description="KL penalty to the SFT model (the adapter-disabled policy). TRL's GRPO default is 0 (no KL); "
        "0.4 held RLOO to SFT on the tiny world before issue 24 (RLOO's is now 0.2; GRPO's was not re-measured).",
    )
