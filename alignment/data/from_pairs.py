"""What policies learn from, derived from preference pairs: unpaired feedback (a thumbs-up/down label on one
completion; TRL's own unpairing, each row once) and the distinct prompts (for online RL, which samples its own
answers)."""

from __future__ import annotations

import json


def _prompt_key(prompt: str | list[dict]) -> str:
    """A prompt (text or messages) as a dict key."""
    return json.dumps(prompt, sort_keys=True)


def unique_prompts(pairs: list[dict]) -> list[dict]:
    """The distinct prompts of preference pairs, in first-seen order, as TRL prompt rows."""
    seen: dict[str, dict] = {}
    for pair in pairs:
        if "prompt" not in pair:
            raise ValueError("online RL samples answers to prompts: preference pairs with an implicit prompt have none")
        seen.setdefault(_prompt_key(pair["prompt"]), {"prompt": pair["prompt"]})
    return list(seen.values())


def with_answers(prompts: list[dict], questions: list[dict]) -> list[dict]:
    """The prompts, each with the accepted ``answers`` of the question that has the same prompt (None where no question
    does): TRL passes them to reward functions, so a gold judge can score answers sampled to these prompts."""
    answers = {_prompt_key(q["prompt"]): q["answers"] for q in questions}
    return [p | {"answers": answers.get(_prompt_key(p["prompt"]))} for p in prompts]


def unpaired(pairs: list[dict]) -> list[dict]:
    """The pairs as unpaired feedback rows (``prompt``, ``completion``, ``label``): the chosen answer thumbs up,
    the rejected one thumbs down (``trl.data_utils.unpair_preference_dataset``; an implicit prompt is extracted
    first), each distinct row once, in the pairs' order."""
    from datasets import Dataset
    from trl.data_utils import maybe_extract_prompt, unpair_preference_dataset

    dataset = Dataset.from_list(pairs)
    if "prompt" not in dataset.column_names:
        dataset = dataset.map(maybe_extract_prompt)
    rows, seen = [], set()
    for row in unpair_preference_dataset(dataset):
        key = json.dumps([row["prompt"], row["completion"], row["label"]], sort_keys=True)
        if key not in seen:
            seen.add(key)
            rows.append({"prompt": row["prompt"], "completion": row["completion"], "label": row["label"]})
    return rows


def balance(rows: list[dict], desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> dict:
    """Thumbs-up and thumbs-down counts and KTO's weighted ratio of the two, which TRL advises to keep within
    [1, 4/3] by setting ``desirable_weight`` / ``undesirable_weight``."""
    up = sum(1 for r in rows if r["label"])
    down = len(rows) - up
    ratio = (desirable_weight * up) / (undesirable_weight * down) if down else float("inf")
    return {"desirable": up, "undesirable": down, "weighted_ratio": ratio}
