"""The ``model`` section: the base model (a given one, or the tiny base pretrained on the world)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.base import Section

REMOTE_CODE_VARIABLE = "ALIGNMENT_ALLOW_REMOTE_CODE"


def remote_code_allowed() -> bool:
    """Whether this process's environment consents to running a model repository's own code."""
    return os.environ.get(REMOTE_CODE_VARIABLE, "").strip() == "1"


def looks_local(name: str) -> bool:
    """Whether a path-or-hub-id setting names a local path: existing, or written as one (absolute, relative with a
    leading ".", under ~, or with more than one "/"), not a hub id ("org/name")."""
    return Path(name).expanduser().exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1


def template_file(chat_template: str | None) -> Path | None:
    """The file a ``model.chat_template`` setting names: a value ending in .jinja or without any Jinja tag
    ({{ or {%) is a path, anything else the template itself (None)."""
    if chat_template is None:
        return None
    if chat_template.endswith(".jinja") or not ("{{" in chat_template or "{%" in chat_template):
        return Path(chat_template).expanduser()
    return None


class TinyBaseConfig(Section):
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


class ModelConfig(Section):
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
    gguf_file: str | None = Field(
        None,
        description="A GGUF file in name_or_path (transformers' gguf_file; needs the gguf package): the base stage "
        "loads it once, dequantized to dtype ('auto': the file's own), and stores it in its artifact as "
        "safetensors with its tokenizer, so no later stage reads the GGUF again. `alignment fetch "
        "smollm2-135m-instruct` puts SmolLM2-135M-Instruct's under ~/.cache/alignment.",
    )
    trust_remote_code: bool = Field(
        False,
        description="Run modelling code from the model's repository (off). Honoured only where the environment of the "
        f"process that loads the model allows it ({REMOTE_CODE_VARIABLE}=1: the worker's own consent, never the "
        "run's); `alignment check` never runs it.",
    )
    chat_template: str | None = Field(
        None,
        description="A Jinja chat template, or the path of a file holding one (a value ending in .jinja or without "
        "any {{ or {% tag; it must exist), for a tokenizer that has none, or to replace its own. None: the "
        "tokenizer's template; a model without one is an error.",
    )
    tiny: TinyBaseConfig = Field(TinyBaseConfig(), description="The tiny base (used when name_or_path is None).")

    @field_validator("name_or_path")
    @classmethod
    def _home(cls, value: str | None) -> str | None:
        return str(Path(value).expanduser()) if value and value.startswith("~") else value

    @field_validator("chat_template")
    @classmethod
    def _template_given(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise PydanticCustomError(
                "empty_chat_template", "chat_template is empty: give a template or a file, or null for the tokenizer's"
            )
        return value

    @model_validator(mode="after")
    def _remote_code_needs_consent(self) -> ModelConfig:
        if self.trust_remote_code and not remote_code_allowed():
            raise PydanticCustomError(
                "remote_code_not_allowed",
                "trust_remote_code would run the model repository's own Python code, and this machine does not allow "
                "it: set {var}=1 in the environment of the process that loads the model (a worker's, for "
                "deployments) to consent",
                {"var": REMOTE_CODE_VARIABLE},
            )
        return self

    @model_validator(mode="after")
    def _gguf_needs_a_model(self) -> ModelConfig:
        if self.gguf_file is not None and self.name_or_path is None:
            raise PydanticCustomError(
                "gguf_without_model",
                "gguf_file '{file}' needs name_or_path: the directory (or hub repository) that holds it",
                {"file": self.gguf_file},
            )
        return self

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments of ``from_pretrained`` for the base model."""
        options: dict[str, Any] = {"dtype": self.dtype, "attn_implementation": self.attn_implementation}
        if self.revision:
            options["revision"] = self.revision
        if self.trust_remote_code:
            options["trust_remote_code"] = True
        return options
