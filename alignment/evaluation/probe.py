"""Knowledge probe (after SliCK, Gekhman et al. 2024): label each question known / unknown by how
often a model answers it right, greedy and sampled.

Categories, with one greedy answer and n samples at a temperature:
highly_known (greedy right and every sample right), maybe_known (greedy right, some sample wrong),
weakly_known (greedy wrong, some sample right), unknown (never right). "Known" = not unknown.
Works on any HF causal LM with a chat template and any QA set with gold answers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alignment.config.evaluation import ProbeConfig
from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.data.records import write_jsonl
from alignment.evaluation.metrics import CORRECT, Judge, behaviour_indicators, make_judge, ratio
from alignment.models.refs import BaseRef, base_ref

if TYPE_CHECKING:
    from alignment.data.run_data import RunData

CATEGORIES = ("highly_known", "maybe_known", "weakly_known", "unknown")


def categorize(greedy_correct: bool, samples_correct: Sequence[bool]) -> str:
    """The SliCK-style category of one question."""
    if greedy_correct:
        return "highly_known" if all(samples_correct) else "maybe_known"
    return "weakly_known" if any(samples_correct) else "unknown"


def probe(model, tok, questions: list[dict], cfg: ProbeConfig, judge: Judge, batch_size: int = 256) -> list[dict]:
    """Probe every question (rows with ``question`` and ``answers``); returns one row per question with its
    category, ``probed_known`` and the greedy answer's confidence (its mean token log-probability)."""
    from alignment.models.generation import generate_answers, generate_scored, generation_config

    prompts = [q["question"] for q in questions]
    greedy_settings = generation_config(tok, cfg.max_new_tokens)
    cut = judge.stop_at_first_sentence
    scored = generate_scored(
        model, tok, prompts, greedy_settings, batch_size=batch_size, confidence=True, first_sentence_only=cut
    )
    greedy, confidence = [a for a, _ in scored], [c for _, c in scored]
    sampled = generation_config(tok, cfg.max_new_tokens, cfg.temperature)
    samples = [
        generate_answers(
            model, tok, prompts, sampled, batch_size=batch_size, seed=cfg.seed + k, first_sentence_only=cut
        )
        for k in range(cfg.samples)
    ]
    rows = []
    for i, q in enumerate(questions):
        g_label = judge(greedy[i], q["answers"])
        g_ok = g_label == CORRECT
        s_ok = [judge(s[i], q["answers"]) == CORRECT for s in samples]
        category = categorize(g_ok, s_ok)
        rows.append(
            {
                "prompt": q["question"],
                "answers": q["answers"],
                "world_known": q.get("known"),
                **({"idk_target": q["idk_target"]} if "idk_target" in q else {}),  # the operating point's rule
                **({"base_answer": q["base_answer"]} if q.get("base_answer") else {}),  # real facts: the base's own
                "greedy": greedy[i],
                "greedy_label": g_label,
                "greedy_confidence": confidence[i],
                "samples": [s[i] for s in samples],
                "samples_correct": sum(s_ok),
                "category": category,
                "probed_known": category != "unknown",
            }
        )
    return rows


def agreement(rows: list[dict]) -> dict:
    """How far the probe agrees with how the world was built (known = in the pretraining corpus)."""
    pairs = Counter((r["world_known"], r["probed_known"]) for r in rows if r["world_known"] is not None)
    total = sum(pairs.values())
    return {
        "agreement": (pairs[(True, True)] + pairs[(False, False)]) / total if total else float("nan"),
        "world_known_probed_known": pairs[(True, True)],
        "world_known_probed_unknown": pairs[(True, False)],
        "world_unknown_probed_known": pairs[(False, True)],
        "world_unknown_probed_unknown": pairs[(False, False)],
    }


def probe_model(
    cfg: ProbeConfig, base: BaseRef, adapters: Sequence[Path], questions: list[dict], device: str, judge: Judge
) -> list[dict]:
    """Probe a model (base + adapters merged in order) on the questions; returns the probe's rows."""
    from alignment.models.modeling import load_causal_lm, load_tokenizer

    return probe(load_causal_lm(base, adapters, device), load_tokenizer(base), questions, cfg, judge)


def greedy_behaviour(rows: list[dict]) -> dict:
    """On questions with a ``known`` label (``world_known``): the probed model's greedy accuracy and
    over-conservativeness on known ones and hallucination rate on unknown ones, with their counts."""
    labelled = [r for r in rows if r["world_known"] is not None and "greedy_label" in r]
    known = [r["world_known"] for r in labelled]
    shares = behaviour_indicators([r["greedy_label"] for r in labelled], known)
    return {"known": sum(known), "unknown": len(known) - sum(known)} | {
        name: ratio(*shares[name]) for name in ("accuracy_known", "over_conservativeness", "hallucination_rate")
    }


def summarize(rows: list[dict]) -> dict:
    """Question count, SliCK category counts and agreement with the world (or the base probe's known labels) of a
    probe's rows, and the greedy answers' behaviour on them."""
    counts = Counter(r["category"] for r in rows)
    out = {"questions": len(rows), "categories": {c: counts[c] for c in CATEGORIES}, **agreement(rows)}
    return out | ({"greedy": greedy_behaviour(rows)} if any(r["world_known"] is not None for r in rows) else {})


def load_probe(path: Path) -> list[dict]:
    """The rows a probe artifact wrote."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def sft_probe_rows(ctx: StageContext, base: Artifact, sft: Artifact, questions: list[dict]) -> list[dict]:
    """The SFT model (the base with its adapter) probed on ``questions`` under the run's probe and judge settings."""
    judge = make_judge(ctx.cfg.judge)
    model = base_ref(base, ctx.cfg.model)
    return probe_model(ctx.cfg.probe, model, [sft.path / "adapter"], questions, ctx.device().name, judge)


def probe_section(ctx: StageContext) -> dict:
    """The config a probe artifact's id holds: the probe's settings and the judge's."""
    return {"probe": ctx.cfg.probe.model_dump(mode="json"), "judge": ctx.cfg.judge.model_dump(mode="json")}


def probe_stage(cfg: ProbeConfig, ctx: StageContext, data: RunData, base: Artifact, sft: Artifact) -> Artifact:
    """Knowledge probe of the SFT model on the held-out questions.

    The SFT model is probed, not the base: the base has never seen the question format, and LoRA SFT
    on other entities teaches the format, not these facts (the held-out entities are in no SFT data).
    """
    inputs = {"base": base.id, "sft": sft.id, "questions": data.id("questions")}

    def build(tmp: Path) -> dict:
        questions = data.rows("questions")
        ctx.report("probe", f"{len(questions)} questions, greedy + {cfg.samples} samples at T={cfg.temperature}")
        rows = sft_probe_rows(ctx, base, sft, questions)
        write_jsonl(tmp / "probe.jsonl", rows)
        return summarize(rows)

    return ctx.materialize("probe", probe_section(ctx), inputs, build, {"probed_model": sft.id})
