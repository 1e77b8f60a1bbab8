"""Talking to an exported model: its own chat template and generation config, one answer per turn."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Chat:
    """A conversation with a model directory (an export's ``model/``): ``say`` adds a user turn and returns the
    answer, generated with the directory's generation config (greedy unless it says otherwise)."""

    model_dir: Path
    max_new_tokens: int = 64
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.tok = AutoTokenizer.from_pretrained(self.model_dir)
        if not self.tok.chat_template:
            raise ValueError(f"{self.model_dir}: the tokenizer has no chat template")
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir).eval()
        try:
            self.settings = GenerationConfig.from_pretrained(self.model_dir)
        except OSError:  # no generation_config.json: transformers' defaults from the model config
            self.settings = GenerationConfig.from_model_config(self.model.config)
        self.settings.max_new_tokens = self.max_new_tokens
        if self.settings.pad_token_id is None:
            pad = self.tok.pad_token_id
            self.settings.pad_token_id = pad if pad is not None else self.tok.eos_token_id

    def say(self, text: str) -> str:
        """The model's answer to ``text``, given the conversation so far (which it joins). The answer stops at the
        model's context length; when the conversation no longer fits, its oldest exchanges are dropped."""
        import torch

        history = [*self.history, {"role": "user", "content": text}]
        context = getattr(self.model.config, "max_position_embeddings", None)
        while True:
            prompt = self.tok.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
            enc = self.tok(prompt, return_tensors="pt", add_special_tokens=False)
            length = enc["input_ids"].shape[1]
            if context is None or length < context or len(history) == 1:
                break
            del history[:2]  # the oldest question and its answer
        if context is not None and length >= context:  # the conversation so far is kept as it was
            raise ValueError(f"the message is {length} tokens; the model reads at most {context}: write less")
        settings = copy.copy(self.settings)
        if context is not None:
            settings.max_new_tokens = min(self.max_new_tokens, context - length)
        with torch.no_grad():
            out = self.model.generate(**enc, generation_config=settings)
        answer = self.tok.decode(out[0, length:], skip_special_tokens=True).strip()
        self.history = [*history, {"role": "assistant", "content": answer}]
        return answer


def model_dir(ref: str, store_root: str) -> Path:
    """The model directory of an export: a model directory itself, an export artifact's directory, or an export id
    or ``latest`` in the store."""
    from alignment.core.store import ArtifactStore

    path = Path(ref).expanduser()
    if (path / "config.json").is_file():
        return path
    if (path / "model" / "config.json").is_file():
        return path / "model"
    return ArtifactStore(store_root).resolve(ref, "export").path / "model"
