"""What every config section shares: strict sections (unknown keys are errors), the error type, the seed range."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A run configuration that cannot be used; the message names the file and key."""


MAX_SEED = 2**32 - 1  # numpy's seed range, which transformers' set_seed passes the seed to


def _members(annotation: Any) -> list[Any]:
    """The types a field's annotation admits: a union's members, an Annotated's type."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [m for a in get_args(annotation) for m in _members(a)]
    return [annotation]


def _items(container: Any, value: list | tuple) -> list[tuple[Any, Any]]:
    """Each item of a list or tuple value with the type the container annotation gives it."""
    args = get_args(container)
    if get_origin(container) is tuple and args and args[-1] is not Ellipsis:
        return list(zip(args, value, strict=False))  # a wrong length is pydantic's to report
    return [(args[0] if args else Any, v) for v in value]


def _bool_as_number(annotation: Any, value: Any) -> bool:
    """Whether ``value`` is, or holds, a boolean where ``annotation`` wants a number (pydantic would read true as 1)."""
    members = _members(annotation)
    if isinstance(value, bool):
        if any(m is bool or m is Any or get_origin(m) is Literal for m in members):
            return False
        return any(m is int or m is float for m in members)
    if isinstance(value, list | tuple):
        containers = [m for m in members if get_origin(m) in (list, tuple)]
        return bool(containers) and all(any(_bool_as_number(t, v) for t, v in _items(c, value)) for c in containers)
    return False


def section_class(annotation: Any) -> type[BaseModel] | None:
    """The config section (a pydantic model) a field's annotation holds, e.g. ``FactsConfig | None``; else None."""
    return next((m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)), None)


class Section(BaseModel):
    """A config section: unknown keys, non-finite numbers, a boolean for a number, and mutation are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name) if info.field_name else None
        if field is not None and _bool_as_number(field.annotation, value):
            raise PydanticCustomError(
                "bool_for_number", "a boolean where a number goes: {value}", {"value": json.dumps(value)}
            )
        return value


def section_dict(section: BaseModel) -> dict[str, Any]:
    """A config section as plain JSON-able data (for manifests and hashing), pass-through arguments included."""
    return section.model_dump(mode="json")


def did_you_mean(name: str, candidates: Iterable[str], prefix: str = "") -> str:
    """The hint "; did you mean 'x'?" for the candidate closest to a mistyped name (``prefix`` before it: the
    section's dotted path, so the hint is a key the user can paste), or ""."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.7)
    return f"; did you mean '{prefix}{close[0]}'?" if close else ""
