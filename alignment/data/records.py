"""JSON Lines reading and writing, the chat form of a question, and the "I don't know" answer.

Dataset sources are loaded and checked by ``alignment.data.sources``; a problem there is a DataError too.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

IDK = "I don't know."  # the abstention answer: in the world's data, probe-built pairs and the gold judge


class DataError(ValueError):
    """A dataset file that cannot be used; the message names the file and line."""


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file; anything else is a DataError naming the
    file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def read_jsonl(path: Path, required: tuple[str, ...] = ()) -> list[dict]:
    """The objects of a JSONL file, each with the ``required`` fields (file and line named on an error)."""
    rows = []
    for lineno, row in iter_jsonl(path):
        missing = [field for field in required if field not in row]
        if missing:
            raise DataError(f"{path}:{lineno}: missing field '{missing[0]}'")
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict], sort_keys: bool = False) -> None:
    """Write rows as JSON Lines (one object per line)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=sort_keys) + "\n")


def to_conversation(prompt: str, completion: str | None = None) -> list[dict[str, str]]:
    """A question (and optionally its answer) as chat messages."""
    messages = [{"role": "user", "content": prompt}]
    if completion is not None:
        messages.append({"role": "assistant", "content": completion})
    return messages


def question_prompts(questions: list[dict]) -> list[dict]:
    """QA rows (``question``, ``answers``) as TRL prompt rows that keep their accepted ``answers`` (for a verifiable
    reward)."""
    return [{"prompt": to_conversation(q["question"]), "answers": q["answers"]} for q in questions]


def fold_accents(text: str) -> str:
    """``text`` without diacritics ('Lomé' -> 'Lome', 'Asunción' -> 'Asuncion'): Unicode NFKD, combining marks
    dropped."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])|\n")


def first_sentence(text: str) -> str:
    """The answer up to its first sentence end or line break (real models explain after answering)."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
