"""The ``dpo`` section: direct preference optimisation with TRL's ``DPOConfig`` names."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.training import SequenceTrainingSection


class DPOSection(SequenceTrainingSection):
    """Direct preference optimisation (TRL ``DPOTrainer``) of a LoRA adapter on the SFT model."""

    target: ClassVar[str] = "trl.DPOConfig"
    sequences_per_example: ClassVar[int] = 2  # chosen and rejected

    num_train_epochs: float = Field(4.0, gt=0, description="Passes over the preference pairs.")
    learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate of the AdamW optimizer.")
    beta: float = Field(0.1, gt=0, description="Strength of the implicit KL penalty to the reference (SFT) model.")
    loss_type: list[Literal["sigmoid", "ipo", "hinge", "robust", "sft"]] = Field(
        ["sigmoid", "sft"],
        description="TRL DPO losses, summed: 'sigmoid' is DPO; 'sft' adds NLL on the chosen answer (RPO). With "
        "plain DPO the tiny model pushed rejected answers down without making 'I don't know' its top answer.",
    )
    loss_weights: list[float] | None = Field([1.0, 1.0], description="Weight of each loss_type entry.")
    precompute_ref_log_probs: bool = Field(
        True,
        description="Compute the reference (SFT) log-probabilities of each pair once, not in every step of every "
        "epoch (TRL's switch; its default is off): the pipeline computes every pair's once as the `reference` "
        "artifact, reused by every DPO run on the same pairs; `train_dpo` called without it computes each pair's the "
        "first time a step draws it. Same training loss to the last digit; what it costs and saves is measured by "
        "`alignment bench` (docs/performance.md).",
    )

    stop_at_operating_point: bool = Field(
        False,
        description="The calibrated stop: before training and every `operating_point_steps` optimizer steps, "
        "measure the policy's greedy abstention on the preference questions; stop at the first measurement whose "
        "share of known questions answered 'I don't know' is at or below what facts.max_known_abstention's rule asks "
        "there (alignment.evaluation.operating_point_stop). The epochs and learning rate still set the schedule (the "
        "learning rate decays over them); the stop decides where the run ends, after at least one step. For DPO "
        "after an SFT model that abstains more than asked; needs the rule on the preference questions "
        "(a real-facts run with facts.max_known_abstention). Never measured on held-out questions.",
    )
    operating_point_steps: int = Field(
        5, ge=1, description="Optimizer steps between two measurements of the calibrated stop."
    )

    def own_fields(self) -> set[str]:
        return super().own_fields() | {"stop_at_operating_point", "operating_point_steps"}

    @model_validator(mode="before")
    @classmethod
    def _weights_follow_the_losses(cls, data: Any) -> Any:
        """A ``loss_type`` given without ``loss_weights`` weighs its losses equally (TRL's None), rather than keeping
        the default's two weights for another list of losses: ``dpo.loss_type=[sigmoid]`` is plain DPO."""
        if isinstance(data, dict) and "loss_type" in data and "loss_weights" not in data:
            return {**data, "loss_weights": None}
        return data

    @model_validator(mode="after")
    def _one_weight_per_loss(self) -> DPOSection:
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise PydanticCustomError(
                "loss_weights_length",
                "loss_weights has {n} entries but loss_type has {m} ({types}): give one weight per loss",
                {"n": len(self.loss_weights), "m": len(self.loss_type), "types": self.loss_type},
            )
        return self
