"""Which weights an artifact stands for: where a base model is, how to load it, and how it is described."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignment.config.compute import ComputeConfig
from alignment.config.model import ModelConfig, template_file
from alignment.config.world import WorldConfig
from alignment.core.store import Artifact, ArtifactStore


@dataclass(frozen=True)
class BaseRef:
    """How to load a base model: its directory or hub id, ``from_pretrained`` options (dtype, attention kernel,
    revision, remote code) and a chat template that replaces the tokenizer's (None: the tokenizer's own)."""

    path: str
    options: dict[str, Any] = field(default_factory=dict)
    chat_template: str | None = None

    def template(self) -> str | None:
        """The configured chat template: the contents of the file it names (a missing one is an error naming it,
        never used as the template), or the template itself."""
        path = template_file(self.chat_template)
        if path is None:
            return self.chat_template
        if not path.is_file():
            raise FileNotFoundError(f"model.chat_template: {path} is not a file")
        return path.read_text()


def base_path(art: Artifact) -> str:
    """Where a base artifact's weights are: our pretrained directory or the configured model."""
    return art.manifest.get("source") or str(art.path / "model")


def base_ref(art: Artifact, cfg: ModelConfig) -> BaseRef:
    """How to load the base model of ``art`` with the run's model settings."""
    return BaseRef(base_path(art), cfg.load_options(), cfg.chat_template)


def model_config(base: Artifact) -> ModelConfig:
    """The model settings a base artifact was built with, read back from its manifest: what a command given only
    artifacts (``alignment export ID``, no config) needs to load the base as the run did."""
    section = dict(base.manifest.get("config", {}).get("section", {}))
    if base.manifest.get("source"):  # a given model, used in place: its whole model section
        return ModelConfig(**section)
    if "gguf" in base.manifest.get("inputs", {}):  # a dequantized GGUF, loaded from the artifact itself
        section.pop("gguf_file", None)
        return ModelConfig(**section)
    return ModelConfig(tiny=section)  # the tiny base: its pretraining settings


def run_settings(store: ArtifactStore, policy: Artifact) -> dict[str, Any]:
    """The run settings a policy artifact was built with, as far as loading its base needs them, from the
    manifests: the seed, the compute settings in its id, the base's model settings and, for the tiny base, the
    world it was pretrained on."""
    base = store.load(policy.manifest["model_chain"][0])
    settings: dict[str, Any] = {"seed": policy.manifest.get("seed", 0), "model": model_config(base)}
    compute = policy.manifest.get("config", {}).get("compute")
    if compute:  # the device and precision the policy was keyed with (what an export's id repeats)
        settings["compute"] = ComputeConfig(**compute)
    world_file = base.manifest.get("inputs", {}).get("world.json")
    if world_file:  # the tiny base: the world artifact holding the very world.json it was pretrained on
        for path in sorted((store.root / "world").glob("world-*")):
            world = store.get(path.name)
            if world and "sha256:" + world.manifest["files"].get("world.json", {}).get("sha256", "") == world_file:
                settings["world"] = WorldConfig(**world.manifest["config"]["section"])
                break
        else:
            raise FileNotFoundError(f"base {base.id}: the world it was pretrained on is not in store {store.root}")
    return settings


def describe(base: Artifact) -> str:
    """The base in one line: its size against Chinchilla's ~20 tokens per parameter, or its source."""
    m = base.metrics
    if "gguf" in m:
        return f"{m['gguf']}, dequantized to {m['dtype']}: {m['parameters']:,} parameters"
    if "parameters" not in m:
        return base.manifest.get("source", "")
    return (
        f"{m['parameters']:,} parameters, {m['training_tokens']:,} training tokens, "
        f"{m['tokens_per_parameter']:.1f} tokens/parameter vs Chinchilla's ~20"
    )


def policy_adapters(policy: Artifact, sft: Artifact) -> list[Path]:
    """The LoRA adapters that make a policy, in merge order: SFT's where the policy was trained on the SFT model
    (its manifest's ``model_chain`` holds it, as it does unless the policy started from the base), then its own."""
    on_sft = sft.id in policy.manifest.get("model_chain", [sft.id])
    return [*([sft.path / "adapter"] if on_sft else []), policy.path / "adapter"]
