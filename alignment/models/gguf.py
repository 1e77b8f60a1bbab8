"""A base model given as a GGUF file (llama.cpp's format): loaded by transformers (``gguf_file=``, the ``gguf``
package), dequantized once, and stored in the base artifact as safetensors with its tokenizer and chat template,
so every later stage loads a plain transformers model and none reads the GGUF again."""

from __future__ import annotations

from pathlib import Path

from alignment.config.model import ModelConfig
from alignment.core.context import StageContext
from alignment.core.store import Artifact, file_sha256

MAGIC = b"GGUF"  # the first four bytes of every GGUF file


def local_file(cfg: ModelConfig) -> Path | None:
    """The GGUF file on this machine (None: ``name_or_path`` is a hub repository); a local directory without
    the file, or a file that is not GGUF, is an error naming both."""
    directory = Path(cfg.name_or_path)
    if not directory.exists() and not cfg.name_or_path.startswith(("/", ".", "~")):
        return None  # a hub id: transformers fetches the file where a hub is reachable
    path = directory / cfg.gguf_file
    if not path.is_file():
        raise ValueError(
            f"model.gguf_file {cfg.gguf_file!r}: {path} does not exist (model.name_or_path is {cfg.name_or_path}); "
            "for SmolLM2-135M-Instruct run `alignment fetch smollm2-135m-instruct` first"
        )
    with path.open("rb") as fh:
        if fh.read(4) != MAGIC:
            raise ValueError(f"model.gguf_file: {path} is not a GGUF file (it does not start with {MAGIC!r})")
    return path


def check_gguf(cfg: ModelConfig) -> Path | None:
    """Fail early and clearly: the file exists, is GGUF, and its metadata describe a causal LM transformers loads.
    Returns the local file (None: a hub repository's)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = local_file(cfg)
    try:
        config = AutoConfig.from_pretrained(cfg.name_or_path, gguf_file=cfg.gguf_file, revision=cfg.revision)
    except Exception as exc:  # the gguf reader raises many kinds on a damaged file
        raise ValueError(f"model.gguf_file: {path or cfg.gguf_file} cannot be read: {exc}") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(f"model.gguf_file: {path or cfg.gguf_file} holds a {config.model_type!r}, not a causal LM")
    return path


def dequantize(cfg: ModelConfig, out: Path) -> dict:
    """Load the GGUF model and its tokenizer, dequantized to ``cfg.dtype``, and save both under ``out`` as a plain
    transformers model directory (safetensors); returns its parameter count and dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = {"gguf_file": cfg.gguf_file, "revision": cfg.revision}
    tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path, **options)
    dtype = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    model = AutoModelForCausalLM.from_pretrained(cfg.name_or_path, dtype=dtype, **options)
    # The weights are plain tensors now; what marks the model as GGUF-quantized would refuse to save it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"parameters": sum(p.numel() for p in model.parameters()), "dtype": str(model.dtype).removeprefix("torch.")}


def gguf_stage(cfg: ModelConfig, ctx: StageContext) -> Artifact:
    """The GGUF base, dequantized into the artifact (its input: the file's sha256, or its hub reference)."""
    path = check_gguf(cfg)
    source = f"sha256:{file_sha256(path)}" if path else f"hub:{cfg.name_or_path}/{cfg.gguf_file}@{cfg.revision}"
    section = cfg.model_dump(mode="json", exclude={"tiny", "name_or_path"})

    def build(tmp: Path) -> dict:
        ctx.report("base", f"dequantizing {path or cfg.gguf_file} to {cfg.dtype}")
        return dequantize(cfg, tmp / "model") | {"gguf": str(path or cfg.gguf_file)}

    return ctx.materialize("base", section, {"gguf": source}, build, {"gguf_file": str(path or cfg.gguf_file)})
