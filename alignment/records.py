"""Loading and validating the JSONL datasets every stage consumes.

Each problem is reported with the file and line it is on, before any training starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

DEMONSTRATION_FIELDS = ("prompt", "completion")
PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")
QUESTION_FIELDS = ("prompt", "answer", "known")
IDK = "I don't know."  # the abstention answer: in the world's data, probe-built pairs and the gold judge


class DataError(ValueError):
    """A dataset file that cannot be used; the message names the file and line."""


def read_jsonl(
    path: Path,
    required: tuple[str, ...],
    nonempty: tuple[str, ...] | None = None,
    check: Callable[[dict], str | None] | None = None,
) -> list[dict]:
    """Read a JSONL file whose rows are objects with ``required`` fields (non-empty strings by default).

    ``check`` may return an error message for a row; it is reported with the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    nonempty = required if nonempty is None else nonempty
    rows = []
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
            for field in required:
                if field not in row:
                    raise DataError(f"{path}:{lineno}: missing field '{field}'")
            for field in nonempty:
                value = row[field]
                if not isinstance(value, str):
                    raise DataError(f"{path}:{lineno}: field '{field}' must be a string, got {type(value).__name__}")
                if not value.strip():
                    raise DataError(f"{path}:{lineno}: field '{field}' is an empty string")
            problem = check(row) if check else None
            if problem:
                raise DataError(f"{path}:{lineno}: {problem}")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def write_jsonl(path: Path, rows: list[dict], sort_keys: bool = False) -> None:
    """Write rows as JSON Lines (one object per line)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=sort_keys) + "\n")


def load_demonstrations(path: Path) -> list[dict]:
    """SFT demonstrations: rows with non-empty ``prompt`` and ``completion``."""
    return read_jsonl(path, DEMONSTRATION_FIELDS)


def load_preferences(path: Path) -> list[dict]:
    """Preference pairs: rows with non-empty ``prompt``, ``chosen``, ``rejected``; chosen != rejected."""

    def differ(row: dict) -> str | None:
        same = row["chosen"].strip() == row["rejected"].strip()
        return "'chosen' and 'rejected' are the same answer" if same else None

    return read_jsonl(path, PREFERENCE_FIELDS, check=differ)


def load_questions(path: Path) -> list[dict]:
    """Evaluation questions: ``prompt``, gold ``answer`` and a boolean ``known``."""

    def boolean_known(row: dict) -> str | None:
        return None if isinstance(row["known"], bool) else "field 'known' must be true or false"

    return read_jsonl(path, QUESTION_FIELDS, nonempty=("prompt", "answer"), check=boolean_known)


def to_conversation(prompt: str, completion: str | None = None) -> list[dict[str, str]]:
    """A question (and optionally its answer) as chat messages."""
    messages = [{"role": "user", "content": prompt}]
    if completion is not None:
        messages.append({"role": "assistant", "content": completion})
    return messages
