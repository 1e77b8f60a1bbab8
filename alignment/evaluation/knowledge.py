"""Model-aware data from what the model as given knows (the real-facts run's ``data`` stage).

The base model (a real instruct model) is probed on every real-facts question: greedy on the SFT and preference
questions, greedy plus the probe's samples on the held-out ones (their SliCK category). A question counts as known
when the greedy answer is right: what the model would tell a user. From that:

- demonstrations: the model's own right answer (its first sentence, in its own words) where it knows, "I don't
  know." where it does not (R-Tuning's refusal-aware data, Zhang et al. 2024);
- held-out questions carry ``known`` (by the base probe) and ``category``; the evaluation splits every metric by them;
- preference questions carry ``known`` too; the pairs are then built by probing the SFT model (on-policy).
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
from alignment.evaluation.metrics import CORRECT, Judge, first_sentence, make_judge
from alignment.evaluation.probe import CATEGORIES, probe
from alignment.models.refs import base_ref


def demonstration(row: dict) -> dict | None:
    """One SFT row from a question ``with_knowledge``: the model's own right answer (first sentence) where its greedy
    answer is right, IDK where it is wrong and ``idk_target`` allows it; None (no demonstration) otherwise."""
    if not row["known"] and not row.get("idk_target", True):
        return None
    completion = first_sentence(row["base_answer"]) if row["known"] else IDK
    return {"prompt": row["question"], "completion": completion, "known": row["known"], "family": row.get("family")}


def with_knowledge(row: dict, greedy: str, judge: Judge, confidence: float | None, category: str | None = None) -> dict:
    """A QA row with the base's greedy answer, its confidence, ``known`` (that answer is right) and, if probed, its
    category."""
    known = judge(greedy, row["answers"]) == CORRECT
    out = dict(row) | {"base_answer": greedy, "base_confidence": confidence, "known": known}
    return out | ({"category": category} if category else {})


def abstention_thresholds(rows: list[dict], max_known_abstention: float) -> dict[str, float]:
    """Per family, the confidence below which "I don't know" is taught: the highest threshold under which at most
    ``max_known_abstention`` of the family's known questions fall (``rows`` with ``known`` and ``base_confidence``).
    A family with no known question gets +inf (always abstain)."""
    out: dict[str, float] = {}
    for family in sorted({str(r.get("family")) for r in rows}):
        known = sorted(r["base_confidence"] for r in rows if str(r.get("family")) == family and r["known"])
        allowed = math.floor(max_known_abstention * len(known) + 1e-9)  # known questions that may fall below
        out[family] = known[allowed] if known else math.inf
    return out


def with_idk_target(rows: list[dict], thresholds: dict[str, float] | None) -> list[dict]:
    """Each row with ``idk_target``: whether "I don't know" is the answer to teach where the base is wrong (its
    confidence is below its family's threshold; always, without thresholds). A family the thresholds never saw
    counts as always abstaining."""
    if thresholds is None:
        return [r | {"idk_target": True} for r in rows]
    return [r | {"idk_target": r["base_confidence"] < thresholds.get(str(r.get("family")), math.inf)} for r in rows]


def confidence_auroc(rows: list[dict]) -> float:
    """How well the base's confidence tells the questions it knows from those it does not: the probability that a
    known question's confidence is above an unknown one's (ties count half); NaN without both kinds."""
    known = [r["base_confidence"] for r in rows if r["known"]]
    unknown = [r["base_confidence"] for r in rows if not r["known"]]
    if not known or not unknown:
        return math.nan
    wins = sum((k > u) + 0.5 * (k == u) for k in known for u in unknown)
    return wins / (len(known) * len(unknown))


def confidence_rule(fit: list[dict], rows: list[dict], max_known_abstention: float = 0.1) -> dict:
    """What the best learnable abstention rule on the base's own signal would do: per-family confidence thresholds
    fit on ``fit`` (at most ``max_known_abstention`` of its known questions below), applied to ``rows``. Returns the
    share of ``rows``' known questions it would abstain on (its over-conservativeness) and of unknown ones (its
    prudence): a policy that learns to abstain from its confidence cannot separate them better."""
    targets = with_idk_target(rows, abstention_thresholds(fit, max_known_abstention))
    known = [r["idk_target"] for r in targets if r["known"]]
    unknown = [r["idk_target"] for r in targets if not r["known"]]
    return {
        "max_known_abstention": max_known_abstention,
        "abstains_on_known": sum(known) / len(known) if known else None,
        "abstains_on_unknown": sum(unknown) / len(unknown) if unknown else None,
    }


def knowledge_summary(rows: dict[str, list[dict]]) -> dict:
    """Known share per role and per family, and the held-out questions' category counts."""
    summary: dict = {}
    for role, role_rows in rows.items():
        families = Counter(r.get("family") for r in role_rows)
        known = Counter(r.get("family") for r in role_rows if r["known"])
        summary[role] = {
            "questions": len(role_rows),
            "known": sum(known.values()),
            "known_by_family": {f: f"{known[f]}/{n}" for f, n in sorted(families.items(), key=str)},
            "confidence_auroc": None if math.isnan(auroc := confidence_auroc(role_rows)) else auroc,
            "idk_targets": sum(1 for r in role_rows if not r["known"] and r.get("idk_target", True)),
        }
    categories = Counter(r["category"] for r in rows["eval"])
    summary["eval"]["categories"] = {c: categories[c] for c in CATEGORIES}
    return summary


def knowledge_stage(cfg: DataConfig, ctx: StageContext, world: Artifact, base: Artifact) -> RunData:
    """Probe the base on the real-facts questions (``world``) and write model-aware demonstrations and the
    questions with ``known``; returns the run's data (pairs still to be built by probing the SFT model)."""
    from alignment.models.generation import generate_scored, generation_config
    from alignment.models.modeling import load_causal_lm, load_tokenizer

    probe_cfg, judge = ctx.cfg.probe, make_judge(ctx.cfg.judge)
    max_known_abstention = ctx.cfg.facts.max_known_abstention
    section = {
        "probe": probe_cfg.model_dump(mode="json"),
        "judge": ctx.cfg.judge.model_dump(mode="json"),
        "max_known_abstention": max_known_abstention,
    }

    def build(tmp: Path) -> dict:
        questions = {role: read_jsonl(world.path / FILES[role], ("question", "answers")) for role in FILES}
        ref = base_ref(base, ctx.cfg.model)
        model, tok = load_causal_lm(ref, (), ctx.device().name), load_tokenizer(ref)
        ctx.report("data", f"probing the base: {len(questions['eval'])} held-out questions, greedy + samples")
        probed = probe(model, tok, questions["eval"], probe_cfg, judge)
        settings = generation_config(tok, probe_cfg.max_new_tokens)
        rows = {}
        for role in ("sft", "pref"):
            ctx.report("data", f"probing the base: {len(questions[role])} {role} questions, greedy")
            prompts = [q["question"] for q in questions[role]]
            cut = judge.stop_at_first_sentence
            scored = generate_scored(model, tok, prompts, settings, confidence=True, first_sentence_only=cut)
            rows[role] = [with_knowledge(q, a, judge, c) for q, (a, c) in zip(questions[role], scored, strict=True)]
        rows["eval"] = [
            with_knowledge(q, p["greedy"], judge, p["greedy_confidence"], p["category"])
            for q, p in zip(questions["eval"], probed, strict=True)
        ]
        thresholds = None
        if max_known_abstention is not None:
            thresholds = abstention_thresholds(rows["sft"], max_known_abstention)
        rows = {role: with_idk_target(role_rows, thresholds) for role, role_rows in rows.items()}
        demos = [d for d in map(demonstration, rows["sft"]) if d is not None]
        write_jsonl(tmp / "demonstrations.jsonl", demos)
        write_jsonl(tmp / "sft_questions.jsonl", rows["sft"])  # every SFT question as probed, demonstrated or not
        write_jsonl(tmp / "preference_questions.jsonl", rows["pref"])
        write_jsonl(tmp / "eval_questions.jsonl", rows["eval"])
        write_jsonl(tmp / "base_probe.jsonl", probed)
        finite = {f: t if math.isfinite(t) else None for f, t in (thresholds or {}).items()}  # None: always abstain
        summary = knowledge_summary(rows) | {"abstention_thresholds": finite, "demonstrations": len(demos)}
        summary["confidence_rule_on_pref"] = confidence_rule(rows["sft"], rows["pref"], max_known_abstention or 0.1)
        ctx.report(
            "data",
            f"the base knows {summary['sft']['known']}/{summary['sft']['questions']} SFT questions; "
            f"{len(demos)} demonstrations, {sum(d['completion'] == IDK for d in demos)} of them 'I don't know'",
        )
        return summary

    art = ctx.materialize("knowledge", section, {"world": world.id, "base": base.id}, build)
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
