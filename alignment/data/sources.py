"""Data sources: datasets loaded with ``datasets.load_dataset`` (a local file or directory, or a hub id),
checked row by row and normalised to TRL's formats before any training.

Every problem is a DataError naming the source, the row (and line, for JSONL) and the column.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alignment.config.data import DataSource
from alignment.core.store import file_sha256
from alignment.data.records import DataError, iter_jsonl, to_conversation

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}
ROLES = ("system", "user", "assistant", "tool")


def describe(source: DataSource) -> str:
    """The source as named in errors: its path, and its configuration and split where they matter."""
    extra = [f"name={source.name}"] if source.name else []
    if not Path(source.path).is_file() and source.split != "train":
        extra.append(f"split={source.split}")
    return source.path + (f" ({', '.join(extra)})" if extra else "")


def source_id(source: DataSource) -> str:
    """A content id: ``sha256:<hex>`` of a local file (its split and column mapping appended when not the
    default), of a directory's files, or ``hub:`` and the exact reference of a hub dataset."""
    local = Path(source.path)
    view = {"split": source.split, "columns": source.columns, "name": source.name}
    suffix = ""
    if view != {"split": "train", "columns": {}, "name": None}:
        suffix = "#" + hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:12]
    if local.is_file():
        return "sha256:" + file_sha256(local) + suffix
    if local.is_dir():
        digest = hashlib.sha256()
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            digest.update(path.relative_to(local).as_posix().encode() + file_sha256(path).encode())
        return "sha256:" + digest.hexdigest() + suffix
    return "hub:" + json.dumps(source.model_dump(mode="json"), sort_keys=True)


TEXT_SUFFIXES = (".jsonl", ".json", ".csv", ".txt")


def check_utf8(path: Path) -> None:
    """A text file that is not UTF-8 is an error naming its line and column (before ``datasets`` reads it)."""
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}: line {lineno}: not UTF-8 text (byte 0x{line[exc.start]:02x} at byte {exc.start + 1} of "
                    "the line); save the file as UTF-8"
                ) from None


# Markers chat templates use to delimit turns (ChatML and Qwen's <|im_start|>, Llama 3's <|eot_id|>, Mistral's
# [INST], <s>/</s>): inside user text they would forge turns, so a row holding one is refused, not escaped.
CONTROL_MARKER = re.compile(r"<\|[A-Za-z0-9_]+\|>|\[/?INST\]|</?s>")


def _unicode(value: str, column: str) -> str:
    """``value`` if it is valid Unicode text without chat control markers: a lone surrogate (e.g. a JSON
    "\\ud800" escape) cannot be encoded or tokenized, and a marker would forge a turn."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _RowError(
            f"column '{column}': character {exc.start + 1} is a lone surrogate, not valid Unicode text"
        ) from None
    marker = CONTROL_MARKER.search(value)
    if marker:
        raise _RowError(
            f"column '{column}': holds the chat control marker {marker.group()!r} at character {marker.start() + 1}, "
            "which would forge a turn; remove it"
        )
    return value


def _join(sub: str) -> str:
    return sub if not sub or sub.startswith("[") else f".{sub}"


def _strings(value: Any) -> Iterator[tuple[str, str]]:
    """(column path, string) for every string in a JSON value."""
    if isinstance(value, str):
        yield "", value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from ((f"{key}{_join(sub)}", text) for sub, text in _strings(item))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from ((f"[{i}]{_join(sub)}", text) for sub, text in _strings(item))


def _jsonl_lines(path: Path) -> list[int]:
    """The line number of each row of a JSONL file; a line that is not a JSON object, or holds a string that is
    not valid Unicode (a lone surrogate escape, which Arrow cannot read), is an error naming line and column."""
    lines = []
    for lineno, row in iter_jsonl(path):
        for column, text in _strings(row):
            try:
                _unicode(text, column)
            except _RowError as exc:
                raise DataError(f"{path}: line {lineno}: {exc}") from None
        lines.append(lineno)
    return lines


def load_raw(source: DataSource) -> tuple[list[dict], Callable[[int], str]]:
    """The source's rows (column mapping applied) and a function naming row ``i`` in an error."""
    from datasets import load_dataset

    local = Path(source.path)
    lines: list[int] = []
    try:
        if local.is_file():
            if local.suffix not in BUILDERS:
                raise DataError(f"{local}: unsupported file type {local.suffix!r}: use one of {', '.join(BUILDERS)}")
            if local.suffix in TEXT_SUFFIXES:
                check_utf8(local)
            if local.suffix == ".jsonl":
                lines = _jsonl_lines(local)
            dataset = load_dataset(BUILDERS[local.suffix], data_files=str(local), split=source.split)
        elif local.is_dir():
            dataset = load_dataset(str(local), source.name, split=source.split)
        else:
            dataset = load_dataset(source.path, source.name, split=source.split, revision=source.revision)
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types (FileNotFoundError, DatasetGenerationError, ...)
        hint = "" if local.exists() else " (not a local file or directory; as a hub id it could not be loaded)"
        raise DataError(f"{describe(source)}: cannot load{hint}: {type(exc).__name__}: {exc}") from None
    for expected, actual in source.columns.items():
        if actual not in dataset.column_names:
            raise DataError(
                f"{describe(source)}: column '{actual}' (mapped to '{expected}') not found; columns: "
                f"{', '.join(dataset.column_names)}"
            )
    dataset = dataset.rename_columns({a: e for e, a in source.columns.items() if a != e})

    def where(i: int) -> str:
        line = f" (line {lines[i]})" if lines else ""
        return f"{describe(source)}: row {i + 1}{line}"

    return dataset.to_list(), where


class _RowError(ValueError):
    """A problem with one row, without its location (added by ``load``)."""


def _text(row: dict, column: str) -> str:
    value = row.get(column)
    if value is None:
        raise _RowError(f"column '{column}' is missing")
    if not isinstance(value, str):
        raise _RowError(f"column '{column}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _RowError(f"column '{column}' is an empty string")
    return _unicode(value, column)


def _messages(row: dict, column: str) -> list[dict[str, str]]:
    value = row.get(column)
    if value is None:
        raise _RowError(f"column '{column}' is missing")
    if not isinstance(value, list) or not value:
        raise _RowError(f"column '{column}' must be a non-empty list of messages")
    for i, message in enumerate(value, start=1):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise _RowError(f"column '{column}': message {i} needs a role and a string content")
        if message.get("role") not in ROLES:
            raise _RowError(f"column '{column}': message {i} has unknown role {message.get('role')!r}")
        _unicode(message["content"], f"{column}[{i}].content")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _turns(row: dict, column: str, role: str | None) -> list[dict[str, str]]:
    """A column as messages: a list of messages as given, or a string as one message of ``role``."""
    if isinstance(row.get(column), str) and role is not None:
        return [{"role": role, "content": _text(row, column)}]
    return _messages(row, column)


def sft_row(row: dict) -> dict:
    """One demonstration in a TRL SFT format, as TRL's conversational prompt/completion: a standard
    prompt/completion becomes a user/assistant pair (so the chat template is used), and a ``messages``
    conversation its last assistant turn as the completion (so the loss is on it alone, with any chat
    template: TRL's ``assistant_only_loss`` would need ``{% generation %}`` markers in the template)."""
    if row.get("messages") is not None:
        messages = _messages(row, "messages")
        if messages[-1]["role"] != "assistant":
            raise _RowError("column 'messages' must end with the assistant message to learn")
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    if row.get("prompt") is not None or row.get("completion") is not None:
        if isinstance(row.get("prompt"), str):
            return {
                "prompt": to_conversation(_text(row, "prompt")),
                "completion": _turns(row, "completion", "assistant"),
            }
        return {"prompt": _messages(row, "prompt"), "completion": _messages(row, "completion")}
    if row.get("text") is not None:
        return {"text": _text(row, "text")}
    raise _RowError("no TRL SFT format: expected 'messages', 'prompt' and 'completion', or 'text'")


def preference_row(row: dict) -> dict:
    """One preference pair in a TRL preference format (explicit or implicit prompt, standard or
    conversational); a standard pair with a prompt becomes conversational."""
    for column in ("chosen", "rejected"):
        if row.get(column) is None:
            raise _RowError(f"column '{column}' is missing")
    if row.get("prompt") is not None:
        if isinstance(row["prompt"], str):
            pair = {"prompt": to_conversation(_text(row, "prompt"))}
            pair |= {c: _turns(row, c, "assistant") for c in ("chosen", "rejected")}
        else:
            pair = {"prompt": _messages(row, "prompt")} | {c: _messages(row, c) for c in ("chosen", "rejected")}
    elif isinstance(row["chosen"], str):
        pair = {c: _text(row, c) for c in ("chosen", "rejected")}
    else:
        pair = {c: _messages(row, c) for c in ("chosen", "rejected")}
    if pair["chosen"] == pair["rejected"]:
        raise _RowError("'chosen' and 'rejected' are the same answer")
    if _plain(pair["chosen"]) == _plain(pair["rejected"]):
        raise _RowError("'chosen' and 'rejected' differ only in case or whitespace: the pair prefers nothing")
    return pair


def _plain(answer: str | list[dict[str, str]]) -> Any:
    """An answer (text or messages) without case or whitespace differences."""
    if isinstance(answer, str):
        return " ".join(answer.split()).casefold()
    return [(m["role"], _plain(m["content"])) for m in answer]


def feedback_row(row: dict) -> dict:
    """One unpaired feedback row in TRL's unpaired preference format: ``prompt``, ``completion`` and a boolean
    ``label`` (thumbs up: true), standard or conversational; a standard row becomes conversational."""
    label = row.get("label")
    if label is None:
        raise _RowError("column 'label' is missing")
    if not isinstance(label, bool):
        raise _RowError(f"column 'label' must be true (thumbs up) or false (thumbs down), got {label!r}")
    for column in ("prompt", "completion"):
        if row.get(column) is None:
            raise _RowError(f"column '{column}' is missing")
    if isinstance(row["prompt"], str):
        turns = {"prompt": to_conversation(_text(row, "prompt")), "completion": _turns(row, "completion", "assistant")}
    else:
        turns = {"prompt": _messages(row, "prompt"), "completion": _messages(row, "completion")}
    return turns | {"label": label}


def question_row(row: dict) -> dict:
    """One QA row: ``question``, ``answers`` (accepted aliases; a single string is one alias), an optional
    boolean ``known`` (by construction, or by probing the base; a real QA set has none, the probe measures it) and an
    optional knowledge ``category`` the evaluation splits its metrics by; where the base was probed, its
    ``base_confidence`` in its greedy answer and ``pik`` (its P(IK) probe's score, the knowledge frontier's signal);
    on a real-facts run's preference questions, ``idk_target`` (the operating point's rule: whether the probe's
    score is below its threshold, where "I don't know" is taught) and the base's own ``base_answer``, which the
    probe-built pairs need; and optionally the fact's ``relation`` (the evaluation splits accuracy by it) and a
    ``statement``: the fact as a sentence up to its answer, which a model that stored the fact completes."""
    question = _text(row, "question")
    answers = row.get("answers")
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not answers:
        raise _RowError("column 'answers' must be a non-empty list of accepted answers")
    if not all(isinstance(a, str) and a.strip() for a in answers):
        raise _RowError("column 'answers' must hold non-empty strings")
    known = row.get("known")
    if known is not None and not isinstance(known, bool):
        raise _RowError("column 'known' must be true or false")
    category = row.get("category")
    if category is not None and not (isinstance(category, str) and category.strip()):
        raise _RowError("column 'category' must be a non-empty string (a knowledge category)")
    out = {"question": question, "answers": answers, "known": known, "category": category}
    for key, what in (("relation", "a relation name"), ("statement", "the start of a fact sentence")):
        value = row.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise _RowError(f"column '{key}' must be a non-empty string ({what})")
        if value is not None:
            out[key] = value
    confidence = row.get("base_confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not math.isfinite(confidence):
            raise _RowError("column 'base_confidence' must be a finite number (a mean token log-probability)")
        out["base_confidence"] = float(confidence)
    pik = row.get("pik")
    if pik is not None:
        if isinstance(pik, bool) or not isinstance(pik, int | float) or not 0 <= pik <= 1:
            raise _RowError("column 'pik' must be a number in [0, 1] (the P(IK) probe's score)")
        out["pik"] = float(pik)
    idk_target = row.get("idk_target")
    if idk_target is not None:
        if not isinstance(idk_target, bool):
            raise _RowError("column 'idk_target' must be true or false (whether 'I don't know' may be taught)")
        out["idk_target"] = idk_target
    base_answer = row.get("base_answer")
    if base_answer is not None:
        if not isinstance(base_answer, str):
            raise _RowError("column 'base_answer' must be a string (the base's greedy answer)")
        out["base_answer"] = base_answer
    return out


def reference_row(row: dict) -> dict | None:
    """One reference document (the ``text`` column); blank lines of a text file are skipped."""
    value = row.get("text")
    if isinstance(value, str) and not value.strip():
        return None
    return {"text": _text(row, "text")}


NORMALIZERS: dict[str, Callable[[dict], dict | None]] = {
    "sft": sft_row,
    "preferences": preference_row,
    "feedback": feedback_row,
    "questions": question_row,
    "reference": reference_row,
}


def _format(row: dict) -> tuple[str, ...]:
    return tuple(sorted(k for k, v in row.items() if k not in ("known", "category") and not isinstance(v, str)))


def load(source: DataSource, kind: str) -> list[dict]:
    """Every row of ``source`` checked and normalised for ``kind`` (a key of NORMALIZERS); all rows share one format."""
    raw, where = load_raw(source)
    rows: list[dict] = []
    first: tuple[tuple[str, ...], int] | None = None
    for i, row in enumerate(raw):
        try:
            normalised = NORMALIZERS[kind](row)
        except _RowError as exc:
            raise DataError(f"{where(i)}: {exc}") from None
        if normalised is None:
            continue
        shape = (tuple(sorted(normalised)), _format(normalised))
        if first is None:
            first = (shape, i)
        elif shape != first[0]:
            raise DataError(
                f"{where(i)}: columns {list(shape[0])} differ in format from row {first[1] + 1}'s {list(first[0][0])}"
            )
        rows.append(normalised)
    if not rows:
        raise DataError(f"{describe(source)}: no rows")
    return rows


def to_source(value: Any) -> DataSource:
    """A DataSource from a path (or a DataSource)."""
    return value if isinstance(value, DataSource) else DataSource(path=str(value))
