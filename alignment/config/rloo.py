"""The ``rloo`` section: online RLHF against the reward model with TRL's ``RLOOConfig`` names."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from alignment.config.training import TrainingSection


class RLOOSection(TrainingSection):
    """Online RLHF (TRL ``RLOOTrainer``): a LoRA policy from the SFT model, sampling answers to the preference
    prompts and climbing the trained reward model, with a KL penalty to the SFT model (the adapter-disabled
    policy)."""

    target: ClassVar[str] = "trl.RLOOConfig"

    num_train_epochs: float = Field(2.0, gt=0, description="Passes over the preference prompts.")
    learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate of the AdamW optimizer.")
    per_device_train_batch_size: int = Field(
        16, ge=2, description="Completions per device per step; a multiple of num_generations."
    )
    beta: float = Field(
        0.4,
        ge=0,
        description="KL penalty to the SFT model. TRL's RLOO default is 0.05; at 0.05-0.2 the tiny world's policy "
        "drifted on known questions (accuracy -0.1 on seed 1), 0.4 kept it within 0.08 of SFT's.",
    )
    num_generations: int = Field(4, ge=2, description="Completions sampled per prompt (RLOO's leave-one-out group).")
    max_completion_length: int = Field(8, ge=1, description="Longest sampled completion, in tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the completions.")
    curve_every_steps: int = Field(
        20,
        ge=1,
        description="Every N steps (and at the start and end), score the policy's greedy answers to held-out "
        "questions with the reward model (proxy) and the gold judge, with its KL to SFT: the over-optimisation curve.",
    )
    curve_questions: int = Field(
        64, ge=1, description="Held-out questions the over-optimisation curve uses, drawn at random (seeded)."
    )

    def own_fields(self) -> set[str]:
        return {"curve_every_steps", "curve_questions"}

    @model_validator(mode="after")
    def _whole_groups(self) -> RLOOSection:
        if self.per_device_train_batch_size % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size {self.per_device_train_batch_size} must be a multiple of "
                f"num_generations {self.num_generations}"
            )
        return self
