"""The ``reward`` section: the reward model with TRL's ``RewardConfig`` names."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from alignment.config.training import SequenceTrainingSection


class RewardSection(SequenceTrainingSection):
    """The reward model (TRL ``RewardTrainer``): LoRA plus a trained score head, on preference pairs."""

    target: ClassVar[str] = "trl.RewardConfig"
    sequences_per_example: ClassVar[int] = 2  # chosen and rejected

    num_train_epochs: float = Field(3.0, gt=0, description="Passes over the training pairs.")
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate of the AdamW optimizer.")
    eval_fraction: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="Share of prompts held out (with all their pairs) for RewardTrainer's evaluation: the "
        "held-out pairwise accuracy. 0: no held-out pairs.",
    )

    def own_fields(self) -> set[str]:
        return {"eval_fraction"}
