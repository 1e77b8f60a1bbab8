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


def demonstration(row: dict) -> dict:
    """One SFT row from a question ``with_knowledge``: the model's own right answer (first sentence) where its greedy
    answer is right, else IDK."""
    completion = first_sentence(row["base_answer"]) if row["known"] else IDK
    return {"prompt": row["question"], "completion": completion, "known": row["known"], "family": row.get("family")}


def with_knowledge(row: dict, greedy: str, judge: Judge, category: str | None = None) -> dict:
    """A QA row with the base's greedy answer, ``known`` (that answer is right) and, if probed, its category."""
    out = dict(row) | {"base_answer": greedy, "known": judge(greedy, row["answers"]) == CORRECT}
    return out | ({"category": category} if category else {})


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
        }
    categories = Counter(r["category"] for r in rows["eval"])
    summary["eval"]["categories"] = {c: categories[c] for c in CATEGORIES}
    return summary


def knowledge_stage(cfg: DataConfig, ctx: StageContext, world: Artifact, base: Artifact) -> RunData:
    """Probe the base on the real-facts questions (``world``) and write model-aware demonstrations and the
    questions with ``known``; returns the run's data (pairs still to be built by probing the SFT model)."""
    from alignment.models.generation import generate_answers, generation_config
    from alignment.models.modeling import load_causal_lm, load_tokenizer

    probe_cfg, judge = ctx.cfg.probe, make_judge(ctx.cfg.judge)
    section = {"probe": probe_cfg.model_dump(mode="json"), "judge": ctx.cfg.judge.model_dump(mode="json")}

    def build(tmp: Path) -> dict:
        questions = {role: read_jsonl(world.path / FILES[role], ("question", "answers")) for role in FILES}
        ref = base_ref(base, ctx.cfg.model)
        model, tok = load_causal_lm(ref, (), ctx.device().name), load_tokenizer(ref)
        ctx.report("data", f"probing the base: {len(questions['eval'])} held-out questions, greedy + samples")
        probed = probe(model, tok, questions["eval"], probe_cfg, judge)
        settings = generation_config(tok, probe_cfg.max_new_tokens)
        greedy = {}
        for role in ("sft", "pref"):
            ctx.report("data", f"probing the base: {len(questions[role])} {role} questions, greedy")
            greedy[role] = generate_answers(model, tok, [q["question"] for q in questions[role]], settings)
        rows = {
            "sft": [with_knowledge(q, a, judge) for q, a in zip(questions["sft"], greedy["sft"], strict=True)],
            "pref": [with_knowledge(q, a, judge) for q, a in zip(questions["pref"], greedy["pref"], strict=True)],
            "eval": [
                with_knowledge(q, p["greedy"], judge, p["category"])
                for q, p in zip(questions["eval"], probed, strict=True)
            ],
        }
        demos = [demonstration(row) for row in rows["sft"]]
        write_jsonl(tmp / "demonstrations.jsonl", demos)
        write_jsonl(tmp / "preference_questions.jsonl", rows["pref"])
        write_jsonl(tmp / "eval_questions.jsonl", rows["eval"])
        write_jsonl(tmp / "base_probe.jsonl", probed)
        summary = knowledge_summary(rows)
        ctx.report("data", f"the base knows {summary['sft']['known']}/{summary['sft']['questions']} SFT questions")
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
