"""Model-aware data from what the model as given knows (the real-facts run's ``data`` stage), read from its
knowledge frontier (``alignment.evaluation.frontier``: every question with ``known``, the base's greedy answer and
``pik``, the P(IK) probe's score).

- demonstrations: the model's own right answer (its first sentence, in its own words) where it knows, "I don't
  know." where it does not (R-Tuning's refusal-aware data, Zhang et al. 2024). With ``facts.max_known_abstention``
  (the operating point on the frontier), the data teaches the probe's rule instead: "I don't know." wherever the
  probe's score is below the threshold that leaves that share of the SFT role's known questions under it, known or
  not; its own right answer where it knows above it; nothing where it is wrong above it. The rule is a function of
  the model's own hidden state, so the model can learn it as sharply as the probe draws it (R-Tuning's split asks
  it to learn "known", which its hidden state separates only as well as the probe's AUROC);
- held-out questions carry ``known`` (by the base probe), ``category`` and ``pik``; the evaluation splits every
  metric by them and places every model on the frontier;
- preference questions carry ``known`` and ``idk_target`` too; the pairs are then built by probing the SFT model.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from alignment.config.data import DataConfig, DataSource
from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.data.facts import FILES
from alignment.data.records import IDK, read_jsonl, write_jsonl
from alignment.data.run_data import RunData, merge, validate_data
from alignment.evaluation.frontier_metrics import auroc
from alignment.evaluation.metrics import first_sentence


def teaches_idk(row: dict) -> bool:
    """Whether the data teaches "I don't know" on this question: its ``idk_target`` where an operating point set
    one (the probe's score is below the threshold, known or not), else wherever the base is wrong (R-Tuning)."""
    target = row.get("idk_target")
    return not row["known"] if target is None else target


def demonstration(row: dict) -> dict | None:
    """One SFT row from a question of the frontier: IDK where ``teaches_idk``, else the model's own right answer
    (first sentence) where its greedy answer is right; None (no demonstration: wrong above the threshold)."""
    idk = teaches_idk(row)
    if not idk and not row["known"]:
        return None
    completion = IDK if idk else first_sentence(row["base_answer"])
    return {"prompt": row["question"], "completion": completion, "known": row["known"], "family": row.get("family")}


def abstention_threshold(rows: list[dict], max_known_abstention: float) -> float:
    """The P(IK) score below which "I don't know" is taught: the highest threshold under which at most
    ``max_known_abstention`` of the known ``rows`` fall (+inf without a known row: always abstain)."""
    known = sorted(r["pik"] for r in rows if r["known"])
    allowed = math.floor(max_known_abstention * len(known) + 1e-9)  # known questions that may fall below
    return known[allowed] if known else math.inf


def with_idk_target(rows: list[dict], threshold: float | None) -> list[dict]:
    """Each row with ``idk_target``: whether its P(IK) score is below ``threshold`` (the data then teaches "I don't
    know" on it, known or not). Without a threshold the rows are returned as they are: R-Tuning's split, "I don't
    know" wherever the model is wrong."""
    if threshold is None:
        return rows
    return [r | {"idk_target": r["pik"] < threshold} for r in rows]


def abstention_rule(fit: list[dict], rows: list[dict], max_known_abstention: float) -> dict:
    """The rule the data teaches, fit on ``fit`` (the SFT role) and applied to ``rows`` (another role): the share of
    their known questions under the threshold (the over-conservativeness it asks for) and of unknown ones (the
    prudence it asks for)."""
    targets = with_idk_target(rows, abstention_threshold(fit, max_known_abstention))
    known = [r["idk_target"] for r in targets if r["known"]]
    unknown = [r["idk_target"] for r in targets if not r["known"]]
    return {
        "max_known_abstention": max_known_abstention,
        "abstains_on_known": sum(known) / len(known) if known else None,
        "abstains_on_unknown": sum(unknown) / len(unknown) if unknown else None,
    }


def _auroc(rows: list[dict], signal: str) -> float | None:
    area = auroc([r[signal] for r in rows], [r["known"] for r in rows])
    return None if math.isnan(area) else area


def knowledge_summary(rows: dict[str, list[dict]]) -> dict:
    """Known share per role and per family, both signals' AUROC and the "I don't know" targets (the held-out
    questions' categories are counted by the frontier, which probed them)."""
    summary: dict = {}
    for role, role_rows in rows.items():
        families = Counter(r.get("family") for r in role_rows)
        known = Counter(r.get("family") for r in role_rows if r["known"])
        summary[role] = {
            "questions": len(role_rows),
            "known": sum(known.values()),
            "known_by_family": {f: f"{known[f]}/{n}" for f, n in sorted(families.items(), key=str)},
            "pik_auroc": _auroc(role_rows, "pik"),  # out-of-fold on the SFT and preference roles
            "confidence_auroc": _auroc(role_rows, "base_confidence"),
            "idk_targets": sum(map(teaches_idk, role_rows)),
        }
    return summary


def knowledge_stage(cfg: DataConfig, ctx: StageContext, world: Artifact, frontier: Artifact) -> RunData:
    """Model-aware demonstrations and the questions with ``known``, ``pik`` and ``idk_target`` from the base's
    knowledge frontier; returns the run's data (pairs still to be built by probing the SFT model)."""
    max_known_abstention = ctx.cfg.facts.max_known_abstention

    def build(tmp: Path) -> dict:
        rows = {role: read_jsonl(frontier.path / FILES[role], ("question", "answers", "pik")) for role in FILES}
        threshold = None
        if max_known_abstention is not None:
            threshold = abstention_threshold(rows["sft"], max_known_abstention)
        rows = {role: with_idk_target(role_rows, threshold) for role, role_rows in rows.items()}
        demos = [d for d in map(demonstration, rows["sft"]) if d is not None]
        write_jsonl(tmp / "demonstrations.jsonl", demos)
        write_jsonl(tmp / "sft_questions.jsonl", rows["sft"])  # every SFT question, demonstrated or not
        write_jsonl(tmp / "preference_questions.jsonl", rows["pref"])
        write_jsonl(tmp / "eval_questions.jsonl", rows["eval"])
        summary = knowledge_summary(rows) | {
            "abstention_threshold": threshold if threshold is None or math.isfinite(threshold) else None,
            "demonstrations": len(demos),
            "rule_on_pref": abstention_rule(rows["sft"], rows["pref"], max_known_abstention or 0.0),
        }
        ctx.report(
            "data",
            f"the base knows {summary['sft']['known']}/{summary['sft']['questions']} SFT questions; "
            f"{len(demos)} demonstrations, {sum(d['completion'] == IDK for d in demos)} of them 'I don't know'",
        )
        return summary

    section = {"max_known_abstention": max_known_abstention}
    art = ctx.materialize("knowledge", section, {"frontier": frontier.id}, build)
    files = RunData(
        sft=DataSource(path=str(art.path / "demonstrations.jsonl")),
        preferences=None,
        questions=DataSource(path=str(art.path / "eval_questions.jsonl")),
        reference=DataSource(path=str(world.path / "reference.txt")),
        preference_questions=DataSource(path=str(art.path / "preference_questions.jsonl")),
        feedback=cfg.feedback,
    )
    ctx.report("data", f"validated {validate_data(files)}")
    return merge(ctx, files, "demonstrations")
