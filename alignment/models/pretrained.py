"""A given Hugging Face causal LM as the base: checked before anything trains, then used in place (a local
directory or a hub id with its revision), not copied into the store."""

from __future__ import annotations

from alignment.config.model import ModelConfig
from alignment.core.context import StageContext
from alignment.core.store import Artifact


def pretrained_stage(cfg: ModelConfig, ctx: StageContext) -> Artifact:
    """The configured model as the base artifact (its manifest names the source and how it is loaded); a GGUF
    file is dequantized into the artifact instead (``alignment.models.gguf``)."""
    from alignment.models.modeling import check_base

    if cfg.gguf_file is not None:
        from alignment.models.gguf import gguf_stage

        return gguf_stage(cfg, ctx)

    check_base(cfg)  # fail now, clearly: not a causal LM, or no chat template
    section = cfg.model_dump(mode="json", exclude={"tiny"})
    source = cfg.name_or_path
    return ctx.materialize("base", section, {}, lambda tmp: {"source": source}, {"source": source})
