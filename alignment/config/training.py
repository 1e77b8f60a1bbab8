"""TRL pass-through: the settings every TRL-trained stage shares (TRL's names), LoRA settings (PEFT's names),
and the check that any other key given in a training section is an argument of the TRL or PEFT class."""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
import tempfile
from functools import lru_cache
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.base import Section, did_you_mean


def _non_finite(value: Any) -> bool:
    """Whether a value (or anything nested in it) is an infinite or NaN float."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


@lru_cache(maxsize=8)
def _fields_of(target: str) -> frozenset[str]:
    """The argument names of a library config dataclass, e.g. ``trl.SFTConfig`` (imported on first use)."""
    module, name = target.rsplit(".", 1)
    return frozenset(f.name for f in dataclasses.fields(getattr(importlib.import_module(module), name)))


class _PassThrough(Section):
    """A section whose keys beyond its own fields are arguments of a library class (``target``).

    Each extra key must be an argument of that class and not one the pipeline sets itself (``managed``);
    the values are checked by building the class once, so a wrong value fails here, before any training.
    """

    model_config = ConfigDict(extra="allow")
    target: ClassVar[str]
    managed: ClassVar[dict[str, str]] = {}

    def passthrough(self) -> dict[str, Any]:
        """The extra arguments given for the library class."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check_passthrough(self) -> _PassThrough:
        extra = self.passthrough()
        if not extra:
            return self
        accepted = _fields_of(self.target)
        for key in sorted(extra):
            if _non_finite(extra[key]):
                raise PydanticCustomError(
                    "non_finite_argument",
                    "'{key}' must be a finite number, not {value}",
                    {"key": key, "value": extra[key]},
                )
            if key in self.managed:
                raise PydanticCustomError(
                    "managed_argument",
                    "'{key}' is set by the pipeline: {where}",
                    {"key": key, "where": self.managed[key]},
                )
            if key not in accepted:
                raise PydanticCustomError(
                    "unknown_argument",
                    "unknown key '{key}': neither a field of this section nor an argument of {target}{hint}",
                    {
                        "key": key,
                        "target": self.target,
                        "hint": did_you_mean(key, [*type(self).model_fields, *accepted]),
                    },
                )
        self._build_check(extra)
        return self

    def _build_check(self, extra: dict[str, Any]) -> None:
        """Build the target class with the extra arguments, so their values are checked now."""


_TRAINER_MANAGED = {
    "output_dir": "artifacts go to the store (store.root)",
    "save_strategy": "set compute.checkpoint_steps",
    "save_steps": "set compute.checkpoint_steps",
    "save_total_limit": "the stage keeps its newest checkpoint",
    "use_cpu": "set compute.device",
    "bf16": "set compute.bf16",
    "fp16": "set compute.bf16",
    "seed": "set the run's seed",
    "data_seed": "set the run's seed",
    "gradient_checkpointing": "set activation_checkpointing (its new name in transformers 5)",
}


class LoraSettings(_PassThrough):
    """LoRA adapter settings, one to one onto ``peft.LoraConfig`` (any other LoraConfig argument passes through)."""

    target: ClassVar[str] = "peft.LoraConfig"
    managed: ClassVar[dict[str, str]] = {
        "task_type": "set by the stage (causal LM or sequence classification)",
        "modules_to_save": "set by the stage (the reward model's score head)",
    }

    r: int = Field(16, ge=1, description="LoRA rank: the inner dimension of each adapter's two matrices.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator; the update is scaled by lora_alpha / r.")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's input during training.")
    target_modules: str | list[str] = Field(
        "all-linear",
        description="Modules that get adapters (PEFT's meaning): 'all-linear'; a list of module names (a name "
        "matches a module path ending in it, e.g. [q_proj, v_proj]); or any other string, a regex PEFT full-matches "
        "against whole module paths (e.g. '.*\\.(q|v)_proj'). `alignment check` refuses one that matches nothing.",
    )

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value or not all(name.strip() for name in value):
                raise PydanticCustomError(
                    "lora_targets", "target_modules {value} must name at least one module, none blank", {"value": value}
                )
            return value
        if not value.strip():
            raise PydanticCustomError("lora_targets", "target_modules is empty: 'all-linear' or a list of modules")
        if re.fullmatch(r"\s*[\w.]+(\s*,\s*[\w.]+)+\s*", value):
            raise PydanticCustomError(
                "lora_targets",
                "target_modules '{value}' is one string, which PEFT reads as a regex over whole module paths: name "
                "several modules as a list, e.g. [{names}]",
                {"value": value, "names": ", ".join(n.strip() for n in value.split(","))},
            )
        try:
            re.compile(value)
        except re.error as exc:
            raise PydanticCustomError(
                "lora_targets",
                "target_modules '{value}' is not a valid regex: {error}",
                {"value": value, "error": str(exc)},
            ) from None
        return value

    def _build_check(self, extra: dict[str, Any]) -> None:
        from peft import LoraConfig

        try:
            LoraConfig(**self.model_dump(), task_type="CAUSAL_LM")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"peft.LoraConfig rejects these settings: {exc}") from None


class TrainingSection(_PassThrough):
    """Settings every TRL-trained stage shares, with TRL's names and meanings; other arguments of the TRL
    config class pass through (e.g. ``report_to: [tensorboard]``)."""

    managed: ClassVar[dict[str, str]] = _TRAINER_MANAGED

    num_train_epochs: float = Field(3.0, gt=0, description="Passes over the training data.")
    per_device_train_batch_size: int = Field(16, ge=1, description="Examples (or pairs) per device per step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Steps whose gradients are summed before each optimizer step."
    )
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate of the AdamW optimizer.")
    lr_scheduler_type: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
        "cosine_with_min_lr",
        "cosine_warmup_with_min_lr",
        "warmup_stable_decay",
    ] = Field("cosine", description="transformers learning-rate schedule after warmup.")
    warmup_steps: float = Field(
        0.05,
        ge=0,
        description="Warmup: a number of steps (>= 1) or a ratio of all steps (< 1); transformers 5 folded "
        "warmup_ratio into this argument.",
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradients are clipped to this global norm.")
    logging_steps: int = Field(10, ge=1, description="Log loss and learning rate (and report progress) every N steps.")
    activation_checkpointing: bool | Literal["auto"] = Field(
        "auto",
        description="Recompute activations in the backward pass to save memory (TRL's default: on). auto (ours, not a "
        "TRL value): on unless the activations one step would keep without it (estimated from the model's shape, the "
        "batch and the length bound) are under 5% of the memory the process holds when training starts, so a small "
        "model skips the recompute and a real one keeps about TRL's memory; on where checkpointing settings "
        "(activation_checkpointing_kwargs) are given, off where FSDP's own checkpointing is. The decision and its "
        "estimates are in the stage's metrics (docs/performance.md).",
    )
    lora: LoraSettings = Field(LoraSettings(), description="The LoRA adapter this stage trains.")
    autocast_adapter_dtype: bool = Field(
        True,
        description="PEFT's upcast of the LoRA adapters to float32 when the base is loaded in bf16 or fp16 (PEFT's "
        "default). False keeps them in the base's dtype, so no casts between base and adapter: about 35% faster "
        "steps in a plain PyTorch LoRA step on an H100 (issue 17); not yet measured by `alignment bench` (no GPU "
        "was lent). No effect when the base is float32 (the CPU default).",
    )

    # Sequences one example puts through the model in a step (a pair: two), for activation_checkpointing: auto
    sequences_per_example: ClassVar[int] = 1

    def trainer_arguments(self) -> dict[str, Any]:
        """This section as keyword arguments of its TRL config class (the LoRA settings excluded); ``auto``
        activation checkpointing starts off and is decided when training starts (``modeling.fit``)."""
        args = self.model_dump(exclude={"lora", "autocast_adapter_dtype", *self.own_fields()})
        asked = args["activation_checkpointing"]  # auto with checkpointing settings given: they ask for it
        kwargs = {"activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"} & set(self.passthrough())
        args["activation_checkpointing"] = asked is True or (asked == "auto" and bool(kwargs))
        args["gradient_checkpointing"] = args["activation_checkpointing"]  # TRL's default for it is True
        return args

    def length_bound(self) -> int:
        """The longest sequence a step puts through the model, in tokens (for activation_checkpointing: auto)."""
        return 1024

    def own_fields(self) -> set[str]:
        """Fields of this section that are ours, not arguments of the TRL class."""
        return set()

    def _build_check(self, extra: dict[str, Any]) -> None:
        module, name = self.target.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                cls(output_dir=tmp, use_cpu=True, bf16=False, **self.trainer_arguments())
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.target} rejects these settings: {exc}") from None


class SequenceTrainingSection(TrainingSection):
    """A training section whose TRL class truncates tokenized sequences (SFT, reward model, DPO; RLOO instead
    bounds only its completions)."""

    max_length: int | None = Field(
        128, ge=8, description="Longest tokenized sequence (prompt + answer); None: no limit."
    )

    def length_bound(self) -> int:
        return self.max_length or 1024


class SamplingTrainingSection(TrainingSection):
    """A training section for online RL (RLOO, GRPO): the policy samples groups of completions per prompt, and its
    TRL class bounds only the completions, not whole sequences."""

    per_device_train_batch_size: int = Field(
        16, ge=2, description="Completions per device per step; a multiple of num_generations."
    )
    num_generations: int = Field(
        4, ge=2, description="Completions sampled per prompt: the group each one's advantage is computed against."
    )
    max_completion_length: int = Field(8, ge=1, description="Longest sampled completion, in tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the completions.")

    def length_bound(self) -> int:
        return 128 + self.max_completion_length  # a question's chat prompt, then the completion

    @model_validator(mode="after")
    def _whole_groups(self) -> SamplingTrainingSection:
        if self.per_device_train_batch_size % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size {self.per_device_train_batch_size} must be a multiple of "
                f"num_generations {self.num_generations}"
            )
        return self
