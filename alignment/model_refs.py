"""Which weights an artifact stands for: where a base model is, and how a base artifact is described."""

from __future__ import annotations

from alignment.store import Artifact


def base_path(art: Artifact) -> str:
    """Where a base artifact's weights are: our pretrained directory or the configured model."""
    return art.manifest.get("source") or str(art.path / "model")


def describe(base: Artifact) -> str:
    """The base in one line: its size against Chinchilla's ~20 tokens per parameter, or its source."""
    m = base.metrics
    if "parameters" not in m:
        return base.manifest.get("source", "")
    return (
        f"{m['parameters']:,} parameters, {m['training_tokens']:,} training tokens, "
        f"{m['tokens_per_parameter']:.1f} tokens/parameter vs Chinchilla's ~20"
    )
