"""Run configuration: pydantic models for every stage, loaded from YAML with dotted overrides.

Unknown or mistyped keys are errors that name the key and the file they came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A run configuration that cannot be used; the message names the file and key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldConfig(_Section):
    """The synthetic world: entities, their facts, and how they are split."""

    seed: int = Field(0, description="Seed of the world generator; a different seed is a different world.")
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
    wrong_answers_per_unknown: int = Field(2, ge=1, description="'I don't know' > wrong pairs per unknown question.")


class DataConfig(_Section):
    """Optional user data files that replace the world's generated ones (JSONL)."""

    demonstrations: Path | None = Field(None, description="JSONL with prompt, completion.")
    preferences: Path | None = Field(None, description="JSONL with prompt, chosen, rejected.")
    preference_source: Literal["construction", "probe"] = Field(
        "construction",
        description="'construction': the pairs file as given or built by the world. 'probe': build pairs from a "
        "knowledge probe of the SFT model on preference questions (its own sampled wrong answers are rejected).",
    )
    preference_questions: Path | None = Field(
        None, description="JSONL with prompt, answer, known: the questions probe-built pairs are made from."
    )
    max_rejected_per_question: int = Field(2, ge=1, description="Probe-built pairs: sampled wrong answers kept.")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.preference_source == "probe" and self.preferences is not None:
            raise ValueError("'preferences' and preference_source 'probe' exclude each other")
        if self.preference_source == "construction" and self.preference_questions is not None:
            raise ValueError("'preference_questions' is only used with preference_source 'probe'")
        return self


class TinyBaseConfig(_Section):
    """The tiny Llama-style base model pretrained on the world's corpus."""

    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(384, ge=8)
    seq_len: int = Field(128, ge=16)
    batch_size: int = Field(32, ge=1)
    steps: int = Field(500, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.0, ge=0)


class ModelConfig(_Section):
    """The base model: a local HF causal-LM directory / hub id, or None for the tiny base we pretrain."""

    name_or_path: str | None = Field(None, description="Local HF causal-LM directory or hub id; None = tiny base.")
    tiny: TinyBaseConfig = TinyBaseConfig()


class LoraSection(_Section):
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = Field("all-linear")


class SFTConfig(LoraSection):
    epochs: float = Field(8.0, gt=0)
    learning_rate: float = Field(2e-3, gt=0)
    batch_size: int = Field(16, ge=1)


class RewardConfig(LoraSection):
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(2e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    eval_fraction: float = Field(0.15, ge=0, lt=1, description="Held-out share of pairs for pairwise accuracy.")


class DPOConfig(LoraSection):
    beta: float = Field(0.1, gt=0)
    loss_type: list[Literal["sigmoid", "ipo", "hinge", "robust", "sft"]] = Field(
        ["sigmoid", "sft"],
        description="TRL DPO losses, summed: 'sigmoid' is DPO; 'sft' adds NLL on the chosen answer (RPO).",
    )
    loss_weights: list[float] | None = Field([1.0, 1.0], description="Weight of each loss_type entry.")
    epochs: float = Field(4.0, gt=0)
    learning_rate: float = Field(5e-4, gt=0)
    batch_size: int = Field(16, ge=1)


class EvalConfig(_Section):
    max_new_tokens: int = Field(8, ge=1)
    sweep_temperatures: list[float] = Field([0.0, 0.5, 1.0, 1.5], description="Sampling sweep temperatures.")
    sweep_top_ps: list[float] = Field([1.0, 0.9], description="Sampling sweep top-p values.")
    sweep_samples: int = Field(5, ge=1, description="Samples per question at each sampled sweep point.")
    batch_size: int = Field(256, ge=1)
    bootstrap_samples: int = Field(1000, ge=10)
    seed: int = 0


class ProbeConfig(_Section):
    """Knowledge probe: greedy plus ``samples`` answers at ``temperature`` per question."""

    samples: int = Field(8, ge=1)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(8, ge=1)
    seed: int = 0


class ComputeConfig(_Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None = torch's default.")
    bf16: bool = Field(False, description="bf16 mixed precision (GPU only).")
    checkpoint_steps: int | None = Field(
        50,
        ge=1,
        description="Training stages save a resumable checkpoint every N optimizer steps under "
        "<store>/.checkpoints/<artifact id>; a re-run after a crash resumes from it. None: no checkpoints.",
    )


class StoreConfig(_Section):
    root: Path = Field(Path("runs"), description="Directory of the artifact store.")


class RunConfig(_Section):
    """A whole pipeline run."""

    seed: int = Field(0, description="Training seed for every stage.")
    world: WorldConfig = WorldConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    sft: SFTConfig = SFTConfig()
    reward: RewardConfig = RewardConfig()
    dpo: DPOConfig = DPOConfig()
    eval: EvalConfig = EvalConfig()
    probe: ProbeConfig = ProbeConfig()
    compute: ComputeConfig = ComputeConfig()
    store: StoreConfig = StoreConfig()


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
    gates: PromotionGates = PromotionGates()


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
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'")
        else:
            lines.append(f"{source}: key '{key}': {e['msg']}")
    return "\n".join(lines)


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
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        raw = loaded or {}
    for assignment in overrides or []:
        apply_override(raw, assignment)
    if overrides:
        source += " (with --set " + ", ".join(overrides) + ")"
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from None


def section_dict(section: BaseModel) -> dict[str, Any]:
    """A config section as plain JSON-able data (for manifests and hashing)."""
    return section.model_dump(mode="json")
