"""Run configuration: pydantic models for every stage, loaded from YAML with dotted overrides.

The defaults here are the offline CPU demo (`configs/tiny.yaml` states only what it changes). Training
sections use TRL's own argument names; any other TRL/transformers training argument may be given in the
same section and is passed through after it is checked against the TRL class. LoRA settings use
`peft.LoraConfig`'s names, with the same pass-through. Unknown or mistyped keys are errors that name the
key and the file they came from.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A run configuration that cannot be used; the message names the file and key."""


MAX_SEED = 2**32 - 1  # numpy's seed range, which transformers' set_seed passes the seed to


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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


class _PassThrough(BaseModel):
    """A section whose keys beyond its own fields are arguments of a library class (``target``).

    Each extra key must be an argument of that class and not one the pipeline sets itself (``managed``);
    the values are checked by building the class once, so a wrong value fails here, before any training.
    """

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
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
                    "unknown key '{key}': neither a field of this section nor an argument of {target}",
                    {"key": key, "target": self.target},
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
        "all-linear", description="Modules that get adapters: 'all-linear' or a list of module names."
    )

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
    activation_checkpointing: bool = Field(
        False,
        description="Recompute activations in the backward pass to save memory. TRL turns it on by default; off, "
        "plain TRL's SFT on the tiny bench ran 6,270 tokens/s instead of 3,727 (2-core CPU, 2026-11-30).",
    )
    lora: LoraSettings = Field(LoraSettings(), description="The LoRA adapter this stage trains.")
    autocast_adapter_dtype: bool = Field(
        True,
        description="PEFT's upcast of the LoRA adapters to float32 when the base is loaded in bf16 or fp16 (PEFT's "
        "default). False keeps them in the base's dtype, so no casts between base and adapter: about 35% faster "
        "steps in a plain PyTorch LoRA step on an H100 (issue 17); not yet measured by `alignment bench` (no GPU "
        "was lent). No effect when the base is float32 (the CPU default).",
    )

    def trainer_arguments(self) -> dict[str, Any]:
        """This section as keyword arguments of its TRL config class (the LoRA settings excluded)."""
        args = self.model_dump(exclude={"lora", "autocast_adapter_dtype", *self.own_fields()})
        args["gradient_checkpointing"] = args["activation_checkpointing"]  # TRL's default for it is True
        return args

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


class SFTSection(SequenceTrainingSection):
    """Supervised finetuning (TRL ``SFTTrainer``) of a LoRA adapter on the demonstrations."""

    target: ClassVar[str] = "trl.SFTConfig"

    num_train_epochs: float = Field(8.0, gt=0, description="Passes over the demonstrations.")
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate of the AdamW optimizer.")
    completion_only_loss: bool = Field(
        True, description="Loss on the answer only, not the prompt (TRL's prompt/completion masking)."
    )


class RewardSection(SequenceTrainingSection):
    """The reward model (TRL ``RewardTrainer``): LoRA plus a trained score head, on preference pairs."""

    target: ClassVar[str] = "trl.RewardConfig"

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


class DPOSection(SequenceTrainingSection):
    """Direct preference optimisation (TRL ``DPOTrainer``) of a LoRA adapter on the SFT model."""

    target: ClassVar[str] = "trl.DPOConfig"

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
        description="Compute the reference (SFT) log-probabilities of every pair once before training, not in "
        "every step of every epoch (TRL's switch; its default is off). Same training loss to the last digit; the "
        "tiny DPO stage took 13.9 s instead of 14.9-16.1 s (2-core CPU, 2026-11-30).",
    )

    @model_validator(mode="after")
    def _one_weight_per_loss(self) -> DPOSection:
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise PydanticCustomError(
                "loss_weights_length",
                "loss_weights has {n} entries but loss_type has {m} ({types}): give one weight per loss",
                {"n": len(self.loss_weights), "m": len(self.loss_type), "types": self.loss_type},
            )
        return self


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


class WorldConfig(_Section):
    """The synthetic world: entities, their facts, and how they are split."""

    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the world generator; a different seed is a different world."
    )
    n_known: int = Field(150, ge=6, description="Entities whose facts are in the pretraining corpus.")
    n_unknown: int = Field(150, ge=6, description="Entities never seen in pretraining.")
    known_split: tuple[float, float, float] = Field(
        (0.4, 0.3, 0.3), description="Shares of known entities for SFT demos, preference pairs, evaluation."
    )
    unknown_split: tuple[float, float, float] = Field(
        (0.3, 0.4, 0.3),
        description="Shares of unknown entities for (mismatched) SFT demos, preference pairs, evaluation.",
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


class DataSource(_Section):
    """One dataset, loaded with ``datasets.load_dataset``: a local .jsonl/.json/.parquet/.csv/.txt file or
    directory, or a hub dataset id. A bare path string is read as ``{path: ...}``."""

    path: str = Field(
        description="Local file or directory, or a hub dataset id (e.g. trl-lib/ultrafeedback_binarized)."
    )
    name: str | None = Field(None, description="Dataset configuration name (hub datasets with several).")
    split: str = Field("train", description="Split to load, e.g. 'train' or 'test[:200]'.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit); None: the default branch.")
    columns: dict[str, str] = Field(
        {},
        description="Column mapping, expected name -> name in this dataset, e.g. {question: query, answers: aliases}.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: Any) -> Any:
        return {"path": str(value)} if isinstance(value, str | Path) else value


class DataConfig(_Section):
    """The run's data sources; any not given comes from the synthetic world. With ``sft``, ``preferences`` (or
    probe-built pairs from ``preference_questions``), ``eval_questions`` and ``reference_text`` all given, no
    world is built."""

    sft: DataSource | None = Field(
        None,
        description="Demonstrations in a TRL SFT format: text; prompt/completion; conversational messages; "
        "conversational prompt/completion. None: the world's.",
    )
    preferences: DataSource | None = Field(
        None,
        description="Preference pairs in a TRL preference format: prompt/chosen/rejected or implicit prompt "
        "(chosen/rejected), standard or conversational. None: the world's.",
    )
    eval_questions: DataSource | None = Field(
        None,
        description="Held-out QA set: question and answers (a list of accepted aliases, as in TriviaQA); an "
        "optional boolean known. None: the world's.",
    )
    reference_text: DataSource | None = Field(
        None, description="Held-out text for perplexity: a .txt file (a document per line) or a text column."
    )
    preference_source: Literal["construction", "probe"] = Field(
        "construction",
        description="'construction': the pairs as given or built by the world. 'probe': build pairs from a "
        "knowledge probe of the SFT model on preference questions (its own sampled wrong answers are rejected).",
    )
    preference_questions: DataSource | None = Field(
        None, description="QA set (question, answers) the probe-built pairs are made from. None: the world's."
    )
    max_rejected_per_question: int = Field(2, ge=1, description="Probe-built pairs: sampled wrong answers kept.")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.preference_source == "probe" and self.preferences is not None:
            raise ValueError("'preferences' and preference_source 'probe' exclude each other")
        if self.preference_source == "construction" and self.preference_questions is not None:
            raise ValueError("'preference_questions' is only used with preference_source 'probe'")
        return self

    def needs_world(self) -> bool:
        """Whether some source must come from the synthetic world."""
        pairs = self.preference_questions if self.preference_source == "probe" else self.preferences
        return any(s is None for s in (self.sft, pairs, self.eval_questions, self.reference_text))


class TinyBaseConfig(_Section):
    """The tiny Llama-style base model pretrained on the world's corpus (transformers' names)."""

    hidden_size: int = Field(128, ge=8, description="Width of the residual stream.")
    num_hidden_layers: int = Field(4, ge=1, description="Decoder layers.")
    num_attention_heads: int = Field(4, ge=1, description="Attention heads per layer.")
    intermediate_size: int = Field(384, ge=8, description="Width of each MLP's hidden layer.")
    seq_len: int = Field(128, ge=16, description="Tokens per pretraining window.")
    per_device_train_batch_size: int = Field(32, ge=1, description="Windows per optimizer step.")
    max_steps: int = Field(500, ge=1, description="Optimizer steps of pretraining.")
    learning_rate: float = Field(3e-3, gt=0, description="Peak AdamW learning rate.")
    warmup_steps: int = Field(30, ge=0, description="Linear warmup steps, then cosine decay to 10% of the peak.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TinyBaseConfig:
        if self.hidden_size % self.num_attention_heads:
            raise PydanticCustomError(
                "heads_divide_width",
                "num_attention_heads ({heads}) must divide hidden_size ({width}): each head gets hidden_size / heads",
                {"heads": self.num_attention_heads, "width": self.hidden_size},
            )
        return self


class ModelConfig(_Section):
    """The base model: a local HF causal-LM directory or hub id, or None for the tiny base we pretrain."""

    name_or_path: str | None = Field(None, description="Local HF causal-LM directory or hub id; None = tiny base.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit); None: the default branch.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "float32",
        description="Weights' dtype when loading: 'auto' keeps the checkpoint's; bf16 / fp16 on a GPU. The tiny "
        "base trains in float32.",
    )
    attn_implementation: str = Field(
        "sdpa", description="Attention kernel: 'sdpa', 'eager', or 'flash_attention_2' where flash-attn is installed."
    )
    trust_remote_code: bool = Field(False, description="Run modelling code from the model's repository (off).")
    chat_template: str | None = Field(
        None,
        description="A Jinja chat template (or a path to a .jinja file) for a tokenizer that has none, or to "
        "replace its own. None: the tokenizer's template; a model without one is an error.",
    )
    tiny: TinyBaseConfig = Field(TinyBaseConfig(), description="The tiny base (used when name_or_path is None).")

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments of ``from_pretrained`` for the base model."""
        options: dict[str, Any] = {"dtype": self.dtype, "attn_implementation": self.attn_implementation}
        if self.revision:
            options["revision"] = self.revision
        if self.trust_remote_code:
            options["trust_remote_code"] = True
        return options


class JudgeConfig(_Section):
    """How an answer is judged against a question's accepted answers (the gold judge)."""

    abstain_phrases: list[str] = Field(
        ["I don't know", "I do not know", "I'm not sure", "I am not sure", "I cannot answer"],
        description="An answer that starts with one of these (or the 'I don't know' answer of the data) "
        "abstains. Compared after normalisation.",
    )
    first_sentence: bool = Field(
        True, description="Judge only the answer's first sentence (real models add explanations)."
    )


class EvalConfig(_Section):
    """The evaluation on held-out data: generation, the sampling sweep and bootstrap intervals."""

    max_new_tokens: int = Field(8, ge=1, description="Longest generated answer, in tokens.")
    sweep_temperatures: list[float] = Field([0.0, 0.5, 1.0, 1.5], description="Sampling sweep temperatures.")
    sweep_top_ps: list[float] = Field([1.0, 0.9], description="Sampling sweep top-p values.")
    sweep_samples: int = Field(5, ge=1, description="Samples per question at each sampled sweep point.")
    batch_size: int = Field(256, ge=1, description="Questions per generation / scoring batch.")
    bootstrap_samples: int = Field(1000, ge=10, description="Bootstrap resamples behind each 95% interval.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the bootstrap and of sampled generations.")


class ProbeConfig(_Section):
    """Knowledge probe: greedy plus ``samples`` answers at ``temperature`` per question."""

    samples: int = Field(8, ge=1, description="Sampled answers per question (besides the greedy one).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the probe's samples.")
    max_new_tokens: int = Field(8, ge=1, description="Longest probe answer, in tokens.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the probe's samples.")


class ComputeConfig(_Section):
    """Where and how stages run."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto': CUDA when available, else CPU.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None = torch's default.")
    bf16: bool = Field(False, description="bf16 mixed precision (GPU only; on CPU it is far slower).")
    num_processes: int = Field(
        1,
        ge=1,
        description="Processes each TRL training stage (SFT, reward, DPO, RLOO) runs in, through `accelerate "
        "launch`: one per GPU; on CPU each is a gloo DDP process. 1: in the calling process, no launch.",
    )
    accelerate_config: str | None = Field(
        None,
        description="An accelerate config file for the launch (configs/accelerate/: ddp, fsdp2, zero2, zero3); "
        "None: one-node DDP. Its num_processes is replaced by compute.num_processes.",
    )
    checkpoint_steps: int | None = Field(
        50,
        ge=1,
        description="Training stages save a resumable checkpoint every N optimizer steps under "
        "<store>/.checkpoints/<artifact id>; a re-run after a crash resumes from it. None: no checkpoints.",
    )


class StoreConfig(_Section):
    """The artifact store."""

    root: Path = Field(Path("runs"), description="Directory of the artifact store.")

    @model_validator(mode="before")
    @classmethod
    def _root_given(cls, data: Any) -> Any:
        if isinstance(data, dict) and "root" in data and (data["root"] is None or not str(data["root"]).strip()):
            raise PydanticCustomError("empty_store_root", "store.root is empty: name the store's directory")
        return data


class RunConfig(_Section):
    """A whole pipeline run."""

    seed: int = Field(0, ge=0, le=MAX_SEED, description="Training seed for every stage.")
    world: WorldConfig = Field(WorldConfig(), description="The synthetic world (the offline default data).")
    data: DataConfig = Field(DataConfig(), description="User data files in place of the world's.")
    model: ModelConfig = Field(ModelConfig(), description="The base model.")
    sft: SFTSection = Field(SFTSection(), description="Supervised finetuning (TRL SFTConfig names).")
    reward: RewardSection = Field(RewardSection(), description="Reward model (TRL RewardConfig names).")
    dpo: DPOSection = Field(DPOSection(), description="DPO (TRL DPOConfig names).")
    rloo: RLOOSection = Field(RLOOSection(), description="Online RLHF against the reward model (TRL RLOOConfig names).")
    policies: list[Literal["dpo", "rloo"]] = Field(
        ["dpo"],
        min_length=1,
        description="The policies trained from the SFT model and evaluated side by side; the first is the one the "
        "retrain flow promotes.",
    )
    eval: EvalConfig = Field(EvalConfig(), description="Evaluation on held-out data.")
    judge: JudgeConfig = Field(JudgeConfig(), description="How answers are judged against the accepted answers.")
    probe: ProbeConfig = Field(ProbeConfig(), description="Knowledge probe of the SFT model.")
    compute: ComputeConfig = Field(ComputeConfig(), description="Device, precision, checkpoints.")
    store: StoreConfig = Field(StoreConfig(), description="Artifact store.")


class PromotionGates(_Section):
    """What a challenger must show against the promoted policy (the champion) to replace it."""

    min_gold_win_rate: float = Field(
        0.5, ge=0, le=1, description="Gold-judge win-rate of the challenger vs the champion (ties 0.5) at least this."
    )
    max_prudence_drop: float = Field(
        0.0, ge=0, le=1, description="Prudence (abstention on unknown questions) may fall by at most this."
    )
    max_accuracy_drop: float = Field(
        0.05, ge=0, le=1, description="Accuracy on known questions may fall by at most this."
    )


class RetrainConfig(_Section):
    """Champion/challenger retraining on the data files that land in ``data_dir``."""

    data_dir: Path = Field(
        Path("data/incoming"),
        description="Where new data lands: demonstrations/*.jsonl and preferences/*.jsonl are appended to the "
        "run's own files. Use an absolute path the worker can read.",
    )
    name: str = Field(
        "policy",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Name of the promoted pointer (<store>/promoted/<name>.json); one champion per name.",
    )
    gates: PromotionGates = Field(PromotionGates(), description="What the challenger must show to be promoted.")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _parse_value(text: str) -> Any:
    """Parse an override value with YAML rules (numbers, booleans, lists, null)."""
    return yaml.safe_load(text) if text.strip() else text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one dotted ``key=value`` assignment to a raw config dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected key=value, e.g. dpo.beta=0.2")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = _parse_value(value)


def format_errors(err: ValidationError, source: str) -> str:
    """Pydantic's errors as one line each, naming the source (file and overrides) and the dotted key."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'")
        elif e["type"] in ("unknown_argument", "managed_argument", "non_finite_argument"):
            full = f"{key}.{e['ctx']['key']}" if key else e["ctx"]["key"]
            lines.append(f"{source}: " + e["msg"].replace(f"'{e['ctx']['key']}'", f"'{full}'", 1))
        else:
            lines.append(f"{source}: key '{key}': {e['msg']}")
    return "\n".join(lines)


def validate(model: type[BaseModel], raw: Any, source: str) -> Any:
    """``model.model_validate(raw)`` with errors as a ConfigError naming ``source`` and each key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a run config from YAML (or defaults when ``path`` is None) and apply ``--set`` overrides."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is None:
            raise ConfigError(f"{path}: the file is empty; write {{}} for all defaults")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        raw = loaded
    for assignment in overrides or []:
        apply_override(raw, assignment)
    if overrides:
        source += " (with --set " + ", ".join(overrides) + ")"
    return validate(RunConfig, raw, source)


def section_dict(section: BaseModel) -> dict[str, Any]:
    """A config section as plain JSON-able data (for manifests and hashing), pass-through arguments included."""
    return section.model_dump(mode="json")
