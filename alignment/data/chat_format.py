"""The tiny tokenizer's chat format: its special tokens, its chat template, and one exchange rendered as text (what
the world's corpus holds). Imports nothing heavy: the world module uses it, and a cached run must not load
transformers."""

from __future__ import annotations

PAD, UNK, EOS, USER, ASSISTANT = "<|pad|>", "<|unk|>", "<|end|>", "<|user|>", "<|assistant|>"

# Prompt rendered alone (with the generation prompt) is a prefix of prompt + completion, as TRL needs.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|> {{ m['content'] }} "
    "{% elif m['role'] == 'assistant' %}<|assistant|> {{ m['content'] }}<|end|>"
    "{% else %}{{ raise_exception('only user and assistant roles are supported') }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def chat_exchange(question: str, answer: str) -> str:
    """A user's question and the assistant's answer as ``CHAT_TEMPLATE`` renders them (a test checks they agree)."""
    return f"{USER} {question} {ASSISTANT} {answer}{EOS}"
