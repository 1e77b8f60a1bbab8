"""The data a run consumes: the user's sources where the config names them, else the synthetic world's files;
every source validated before any training; and the new files a retrain appends to them as
content-addressed ``dataset`` artifacts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from alignment.config.data import DataConfig, DataSource
from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.data.from_pairs import unique_prompts, unpaired, with_answers
from alignment.data.records import DataError, question_prompts, write_jsonl
from alignment.data.sources import load, source_id, to_source

WORLD_QA_COLUMNS = {
    "question": "prompt",
    "answers": "answer",
    "relation": "attribute",
}  # the world's QA files name them so


@dataclass(frozen=True)
class RunData:
    """The run's sources: demonstrations (``sft``), preference pairs (None while probe-built pairs are still to
    be made), the held-out QA set (``questions``), the reference text, probe-pair questions if used, and unpaired
    feedback if given (``feedback``; else the policies that learn from feedback get the pairs unpaired)."""

    sft: DataSource
    preferences: DataSource | None
    questions: DataSource
    reference: DataSource
    preference_questions: DataSource | None = None
    feedback: DataSource | None = None

    def id(self, name: str) -> str:
        """The content id of one of the sources (``sha256:...`` for local files, ``hub:...`` for hub datasets)."""
        return source_id(getattr(self, name))

    def rows(self, name: str) -> list[dict]:
        """One source's rows, checked and normalised (see ``alignment.data.sources``)."""
        kind = {"preference_questions": "questions"}.get(name, name)
        return load(getattr(self, name), kind)

    def learning_rows(self, learns: str) -> list[dict]:
        """What a policy learns from (``Policy.learns``): the pairs; unpaired feedback (the feedback source, else
        the pairs unpaired, ``alignment.data.from_pairs``); the pairs' prompts (with the accepted ``answers`` of the
        preference-role questions where there are any); or those questions as prompts with their ``answers``."""
        if learns == "pairs":
            return self.rows("preferences")
        if learns == "feedback":
            return self.rows("feedback") if self.feedback else unpaired(self.rows("preferences"))
        if learns == "questions":
            if self.preference_questions is None:
                raise ValueError("no questions with accepted answers: set data.preference_questions")
            return question_prompts(self.rows("preference_questions"))
        prompts = unique_prompts(self.rows("preferences"))
        if self.preference_questions is None:
            return prompts
        return with_answers(prompts, question_prompts(self.rows("preference_questions")))

    def feedback_input(self) -> dict[str, str]:
        """The manifest input of a stage that learns from feedback: the feedback file's id, or the pairs' id
        when the feedback is derived from them."""
        return {"feedback": self.id("feedback")} if self.feedback else {"preferences": self.id("preferences")}

    def reference_documents(self) -> list[str]:
        """The held-out reference text, one document per row (a line of a .txt file)."""
        return [row["text"] for row in self.rows("reference")]


def resolve_sources(cfg: DataConfig, world: Artifact | None = None) -> RunData:
    """The run's sources: the config's where given, else the world's files."""

    def pick(given: DataSource | None, name: str, columns: dict | None = None) -> DataSource:
        if given is not None:
            return given
        if world is None:
            raise ValueError(f"data source {name!r} is not set and no synthetic world is built")
        return DataSource(path=str(world.path / name), columns=columns or {})

    probe = cfg.preference_source == "probe"
    return RunData(
        sft=pick(cfg.sft, "demonstrations.jsonl"),
        preferences=None if probe else pick(cfg.preferences, "preferences.jsonl"),
        questions=pick(cfg.eval_questions, "eval_questions.jsonl", WORLD_QA_COLUMNS),
        reference=pick(cfg.reference_text, "reference.txt"),
        preference_questions=pick(cfg.preference_questions, "preference_questions.jsonl", WORLD_QA_COLUMNS)
        if probe or cfg.preference_questions is not None or world is not None
        else None,
        feedback=cfg.feedback,
    )


def validate_data(files: RunData) -> dict[str, int]:
    """Load and check every source before any training (the source, row and column named on an error);
    returns row counts."""
    names = ["sft", "questions", "reference"]
    names += [n for n in ("preferences", "preference_questions", "feedback") if getattr(files, n) is not None]
    return {name: len(files.rows(name)) for name in names}


def merge(ctx: StageContext, files: RunData, kind: str) -> RunData:
    """Append the retrain's new files of one kind (``ctx.incoming["demonstrations" | "preferences"]``) to the
    run's own source (``sft`` or ``preferences``).

    The merged rows (normalised to TRL's conversational format) are a ``dataset`` artifact whose inputs are
    every source's content id, so the stages that read it re-run exactly when a file was added or changed.
    No new files: nothing changes.
    """
    name = {"demonstrations": "sft", "preferences": "preferences"}[kind]
    extra = [to_source(p) for p in ctx.incoming.get(kind, [])]
    if not extra:
        return files
    sources = [getattr(files, name), *extra]
    inputs = {"0-run": source_id(sources[0])}
    inputs |= {f"{i}-{Path(s.path).name}": source_id(s) for i, s in enumerate(extra, start=1)}

    def build(tmp: Path) -> dict:
        # Snapshot the new files first and train on the copies: a file that vanished, or changed since its
        # content id was taken, is an error, never half-read.
        snapshot = tmp / "incoming"
        snapshot.mkdir()
        copies = [sources[0]]
        for (key, expected), source in zip(list(inputs.items())[1:], extra, strict=True):
            copy = snapshot / key
            try:
                shutil.copyfile(source.path, copy)
            except FileNotFoundError:
                raise DataError(f"{source.path}: vanished while the retrain ran; nothing was trained on it") from None
            copy_source = source.model_copy(update={"path": str(copy)})
            if source_id(copy_source) != expected:
                raise DataError(f"{source.path}: changed while the retrain ran (its content hash differs); run again")
            copies.append(copy_source)
        rows = [row for source in copies for row in load(source, name)]
        write_jsonl(tmp / f"{kind}.jsonl", rows)
        return {"rows": len(rows), "files": len(sources)}

    art = ctx.materialize("dataset", {"kind": kind}, inputs, build, extra={"sources": [s.path for s in sources]})
    return replace(files, **{name: DataSource(path=str(art.path / f"{kind}.jsonl"))})


def data_stage(cfg: DataConfig, ctx: StageContext, world: Artifact | None = None) -> RunData:
    """The run's sources, every one validated before anything trains, with the retrain's new demonstrations
    appended."""
    files = resolve_sources(cfg, world)
    counts = validate_data(files)
    ctx.report("data", f"validated {counts}")
    return merge(ctx, files, "demonstrations")


def preferences_stage(cfg: DataConfig, ctx: StageContext, data: RunData) -> RunData:
    """The preference pairs as given or built by the world, with the retrain's new pairs appended."""
    return merge(ctx, data, "preferences")
