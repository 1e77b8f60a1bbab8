"""Checks a run makes before any work, against this machine and the base model: heavy libraries (torch,
transformers) are imported only when a check needs them, so a run with nothing to check stays fast."""

from __future__ import annotations

import re
from pathlib import Path

from alignment.config.base import ConfigError
from alignment.config.compute import ComputeConfig
from alignment.config.model import ModelConfig, template_file
from alignment.config.run import RunConfig
from alignment.config.training import TrainingSection


def check_compute(cfg: ComputeConfig, source: str) -> None:
    """The compute settings against this machine, before any work: a GPU asked for must be there, the processes
    must not outnumber the GPUs they would run on, and a named accelerate config must exist."""
    if cfg.accelerate_config and not Path(cfg.accelerate_config).is_file():
        raise ConfigError(f"{source}: key 'compute.accelerate_config': {cfg.accelerate_config} is not a file")
    if cfg.device == "cpu" or (cfg.device == "auto" and cfg.num_processes == 1):
        return  # nothing to ask torch (whose import takes seconds)
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cfg.device == "cuda" and not gpus:
        raise ConfigError(f"{source}: key 'compute.device' is 'cuda' but this machine has no CUDA device")
    if cfg.num_processes > 1 and gpus and cfg.num_processes > gpus:
        raise ConfigError(
            f"{source}: key 'compute.num_processes' is {cfg.num_processes} but this machine has {gpus} GPU(s)"
        )


def check_chat_template(cfg: ModelConfig, source: str) -> None:
    """A chat template file the config names exists on this machine (never its path used as the template)."""
    path = template_file(cfg.chat_template)
    if path is not None and not path.is_file():
        raise ConfigError(f"{source}: key 'model.chat_template': {path} is not a file")


def _module_names(cfg: RunConfig) -> set[str]:
    """The module names of the configured base, from its config on the meta device (no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        if cfg.model.name_or_path is None:
            t = cfg.model.tiny
            shape = {"hidden_size": t.hidden_size, "intermediate_size": t.intermediate_size}
            shape |= {"num_hidden_layers": t.num_hidden_layers, "num_attention_heads": t.num_attention_heads}
            model = LlamaForCausalLM(LlamaConfig(vocab_size=64, **shape))
        else:  # never the repository's own code: a model that needs it is not checked here
            config = AutoConfig.from_pretrained(cfg.model.name_or_path, revision=cfg.model.revision)
            model = AutoModelForCausalLM.from_config(config)
    return {name for name, _ in model.named_modules() if name}


def check_lora_targets(cfg: RunConfig, source: str) -> None:
    """Every LoRA ``target_modules`` list names modules the base has, and a regex (any string but 'all-linear')
    full-matches at least one module path, as PEFT matches them; an error names the file, the key and the model's
    linear layers."""
    if cfg.model.trust_remote_code:
        return  # its modules are defined by its own code, which a check never runs
    names = None
    lora_sections = [name for name in type(cfg).model_fields if isinstance(getattr(cfg, name), TrainingSection)]
    for section in lora_sections:
        targets = getattr(cfg, section).lora.target_modules
        if targets == "all-linear":
            continue
        names = names if names is not None else _module_names(cfg)
        linear = sorted({n.rsplit(".", 1)[-1] for n in names if n.endswith("_proj")} | {"lm_head"})
        if isinstance(targets, str):
            if not any(re.fullmatch(targets, n) for n in names):
                example = max((n for n in names if n.endswith("_proj")), key=len, default="lm_head")
                suggestion = targets if re.fullmatch(r"[\w.]+", targets) else linear[0]
                raise ConfigError(
                    f"{source}: key '{section}.lora.target_modules': the regex '{targets}' full-matches no module path "
                    f"of the base model (e.g. {example}); to name modules give a list, e.g. [{suggestion}]; its linear "
                    f"layers: {', '.join(linear)}"
                )
            continue
        missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
        if missing:
            raise ConfigError(
                f"{source}: key '{section}.lora.target_modules': {missing} match no module of the base model; "
                f"its linear layers: {', '.join(linear)}"
            )
