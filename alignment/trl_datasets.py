"""Our rows as `datasets.Dataset`s in TRL's conversational formats (prompt/completion, prompt/chosen/rejected)."""

from __future__ import annotations

from datasets import Dataset

from alignment.records import to_conversation


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def sft_dataset(rows: list[dict]) -> Dataset:
    """Demonstrations as conversational prompt/completion rows (TRL masks the prompt from the loss)."""
    return Dataset.from_list(
        [{"prompt": to_conversation(r["prompt"]), "completion": _assistant(r["completion"])} for r in rows]
    )


def preference_dataset(rows: list[dict]) -> Dataset:
    """Preference rows as conversational prompt/chosen/rejected (the format TRL's trainers take)."""
    return Dataset.from_list(
        [
            {
                "prompt": to_conversation(r["prompt"]),
                "chosen": _assistant(r["chosen"]),
                "rejected": _assistant(r["rejected"]),
            }
            for r in rows
        ]
    )
