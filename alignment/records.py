"""JSON Lines reading and writing, the chat form of a question, and the "I don't know" answer.

Dataset sources are loaded and checked by ``alignment.sources``; a problem there is a DataError too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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


def to_conversation(prompt: str, completion: str | None = None) -> list[dict[str, str]]:
    """A question (and optionally its answer) as chat messages."""
    messages = [{"role": "user", "content": prompt}]
    if completion is not None:
        messages.append({"role": "assistant", "content": completion})
    return messages
