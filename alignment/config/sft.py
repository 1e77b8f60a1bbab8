"""The ``sft`` section: supervised finetuning with TRL's ``SFTConfig`` names."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from alignment.config.training import SequenceTrainingSection


class SFTSection(SequenceTrainingSection):
    """Supervised finetuning (TRL ``SFTTrainer``) of a LoRA adapter on the demonstrations."""

    target: ClassVar[str] = "trl.SFTConfig"

    num_train_epochs: float = Field(8.0, gt=0, description="Passes over the demonstrations.")
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate of the AdamW optimizer.")
    completion_only_loss: bool = Field(
        True, description="Loss on the answer only, not the prompt (TRL's prompt/completion masking)."
    )
