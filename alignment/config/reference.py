"""The config reference: every key of a run config with its value, default and description, from the sections'
own fields (``alignment config`` prints it; ``docs/config.md`` is generated from it and checked by a test)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from alignment.config.base import section_class


@dataclass(frozen=True)
class Key:
    """One config key: its dotted name, the value in the config described, its default and its description."""

    name: str
    value: Any
    default: Any
    description: str
    section: bool = False  # a section heading (its keys follow), not a value


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _default(info: Any) -> Any:
    return _plain(info.get_default(call_default_factory=True))


def keys(config: BaseModel, prefix: str = "", expand_unset: bool = False) -> list[Key]:
    """Every key of ``config``, sections expanded; a training section's extra arguments for its library class come
    after its fields. An optional section that is None is one key, or with ``expand_unset`` its fields' defaults."""
    out: list[Key] = []
    for name, info in type(config).model_fields.items():
        value = getattr(config, name)
        dotted = f"{prefix}{name}"
        cls = section_class(info.annotation)
        if (
            value is None
            and cls is not None
            and expand_unset
            and not any(f.is_required() for f in cls.model_fields.values())
        ):
            value = cls()  # an optional section that has defaults for all its keys
        if isinstance(value, BaseModel):
            out.append(Key(dotted, None, None, info.description or "", section=True))
            out += keys(value, f"{dotted}.", expand_unset)
        else:
            out.append(Key(dotted, _plain(value), _default(info), info.description or ""))
    for name, value in sorted((config.model_extra or {}).items()):
        out.append(Key(f"{prefix}{name}", value, None, "an argument of the section's library class, passed through"))
    return out


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value


def render_text(rows: list[Key], changed_only: bool = False) -> str:
    """One line per key: ``name = value`` and, where it differs, the default; then the description."""
    lines: list[str] = []
    for key in rows:
        if key.section and "." not in key.name:
            lines += ["", f"[{key.name}] {key.description}"]  # a top-level section
            continue
        if key.section:
            if not changed_only:
                lines.append(f"{key.name}: {key.description}")  # a nested section
            continue
        differs = key.value != key.default
        if changed_only and not differs:
            continue
        default = f"  (default {_show(key.default)})" if differs else ""
        lines.append(f"{key.name} = {_show(key.value)}{default}  # {key.description}")
    if changed_only:  # no heading without a key under it
        lines = [line for i, line in enumerate(lines) if not line.startswith("[") or _has_keys(lines, i)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines).strip()) + "\n"


def _has_keys(lines: list[str], heading: int) -> bool:
    following = lines[heading + 1 : heading + 2]
    return bool(following) and following[0] != "" and not following[0].startswith("[")


def render_markdown(rows: list[Key]) -> str:
    """The reference as Markdown: the top-level keys, then one table per section, each key with its default and
    description."""
    header = ["| key | default | description |", "| --- | --- | --- |"]
    lines = [
        "# Config reference",
        "",
        "Every key of a run config, its default and what it means; generated from the sections' own fields by",
        "`alignment config --defaults --markdown` (a test checks that this file matches). Training sections also take",
        "any argument of their TRL class (and `lora` any of `peft.LoraConfig`), under TRL's own names.",
        "",
        "## Top level",
        "",
        *header,
    ]
    sections: list[str] = []
    for key in rows:
        target = lines if "." not in key.name and not key.section else sections
        if key.section and "." not in key.name:
            sections += ["", f"## `{key.name}`", "", key.description, "", *header]
        elif key.section:
            sections.append(f"| `{key.name}` | (section) | {key.description.replace('|', '/')} |")
        else:
            shown = _show(key.default).replace("|", "\\|")
            target.append(f"| `{key.name}` | `{shown}` | {key.description.replace('|', '/')} |")
    return "\n".join(lines + sections) + "\n"
