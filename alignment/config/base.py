"""What every config section shares: strict sections (unknown keys are errors), the error type, the seed range."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A run configuration that cannot be used; the message names the file and key."""


MAX_SEED = 2**32 - 1  # numpy's seed range, which transformers' set_seed passes the seed to


class Section(BaseModel):
    """A config section: unknown keys, non-finite numbers and mutation are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def section_dict(section: BaseModel) -> dict[str, Any]:
    """A config section as plain JSON-able data (for manifests and hashing), pass-through arguments included."""
    return section.model_dump(mode="json")


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest candidate to a mistyped name, or ""."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.7)
    return f"; did you mean '{close[0]}'?" if close else ""
