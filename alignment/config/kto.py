"""The ``kto`` section: Kahneman-Tversky optimisation from unpaired feedback, with TRL's ``KTOConfig`` names."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from alignment.config.training import SequenceTrainingSection


class KTOSection(SequenceTrainingSection):
    """KTO (TRL ``KTOTrainer``) of a LoRA adapter on the SFT model, from unpaired feedback: a prompt, a completion
    and a thumbs-up/down ``label``. The reference is the SFT model (the adapter disabled)."""

    target: ClassVar[str] = "trl.KTOConfig"

    num_train_epochs: float = Field(4.0, gt=0, description="Passes over the feedback rows.")
    learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate of the AdamW optimizer.")
    per_device_train_batch_size: int = Field(
        16, ge=2, description="Rows per device per step; KTO estimates its KL term from mismatched rows of a batch."
    )
    beta: float = Field(
        0.3,
        gt=0,
        description="Strength of the implicit KL penalty to the reference (SFT) model. TRL's default is 0.1; on the "
        "tiny world (seed 0) 0.1 cost 0.05 of SFT's accuracy on known questions, 0.3 none.",
    )
    desirable_weight: float = Field(
        2.0,
        gt=0,
        description="Weight of the thumbs-up rows' loss. TRL advises desirable_weight x thumbs-up rows / "
        "(undesirable_weight x thumbs-down rows) within [1, 4/3] (the stage records that ratio and warns outside "
        "it). 2.0 balances the world's feedback, two thumbs-down rows per thumbs-up; TRL's default is 1.0. On the "
        "tiny world (seed 0) 1.0 cost 0.14 of SFT's accuracy on known questions.",
    )
    undesirable_weight: float = Field(1.0, gt=0, description="Weight of the thumbs-down rows' loss.")
