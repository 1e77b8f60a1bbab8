"""The ``data`` section: the run's data sources, each loaded with ``datasets.load_dataset``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from alignment.config.base import Section


class DataSource(Section):
    """One dataset, loaded with ``datasets.load_dataset``: a local .jsonl/.json/.parquet/.csv/.txt file or
    directory, or a hub dataset id. A bare path string is read as ``{path: ...}``."""

    path: str = Field(
        description="Local file or directory, or a hub dataset id (e.g. trl-lib/ultrafeedback_binarized)."
    )
    name: str | None = Field(None, description="Dataset configuration name (hub datasets with several).")
    split: str = Field("train", description="Split to load, e.g. 'train' or 'test[:200]'.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit); None: the default branch.")
    columns: dict[str, str] = Field(
        {},
        description="Column mapping, expected name -> name in this dataset, e.g. {question: query, answers: aliases}.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: Any) -> Any:
        return {"path": str(value)} if isinstance(value, str | Path) else value


class DataConfig(Section):
    """The run's data sources; any not given comes from the synthetic world. With ``sft``, ``preferences`` (or
    probe-built pairs from ``preference_questions``), ``eval_questions`` and ``reference_text`` all given, no
    world is built."""

    sft: DataSource | None = Field(
        None,
        description="Demonstrations in a TRL SFT format: text; prompt/completion; conversational messages; "
        "conversational prompt/completion. None: the world's.",
    )
    preferences: DataSource | None = Field(
        None,
        description="Preference pairs in a TRL preference format: prompt/chosen/rejected or implicit prompt "
        "(chosen/rejected), standard or conversational. None: the world's.",
    )
    feedback: DataSource | None = Field(
        None,
        description="Unpaired feedback for the policies that learn from it (kto), in TRL's unpaired preference "
        "format: prompt, completion and a boolean label (thumbs up / down), standard or conversational; the two "
        "labels may be unbalanced. None: derived from the preference pairs (chosen: up, rejected: down).",
    )
    eval_questions: DataSource | None = Field(
        None,
        description="Held-out QA set: question and answers (a list of accepted aliases, as in TriviaQA); an "
        "optional boolean known. None: the world's.",
    )
    reference_text: DataSource | None = Field(
        None, description="Held-out text for perplexity: a .txt file (a document per line) or a text column."
    )
    preference_source: Literal["construction", "probe"] = Field(
        "construction",
        description="'construction': the pairs as given or built by the world. 'probe': build pairs from a "
        "knowledge probe of the SFT model on preference questions (its own sampled wrong answers are rejected).",
    )
    preference_questions: DataSource | None = Field(
        None, description="QA set (question, answers) the probe-built pairs are made from. None: the world's."
    )
    max_rejected_per_question: int = Field(2, ge=1, description="Probe-built pairs: sampled wrong answers kept.")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.preference_source == "probe" and self.preferences is not None:
            raise ValueError("'preferences' and preference_source 'probe' exclude each other")
        return self

    def needs_world(self) -> bool:
        """Whether some source must come from the synthetic world."""
        pairs = self.preference_questions if self.preference_source == "probe" else self.preferences
        return any(s is None for s in (self.sft, pairs, self.eval_questions, self.reference_text))
