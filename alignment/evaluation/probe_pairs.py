"""Model-aware preference pairs (the ``preferences`` stage when ``data.preference_source: probe``): the SFT model is
probed on the preference questions and its own wrong answers are rejected, against "I don't know" where it does not
know a question and against its own right answer where it does.

Its own module so that the pair rules can change without touching the probe the frontier stage runs (and so
without rebuilding the frontier).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from alignment.config.data import DataSource
from alignment.config.evaluation import ProbeConfig
from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.data.records import IDK, write_jsonl
from alignment.data.run_data import RunData, merge
from alignment.evaluation.metrics import CORRECT, WRONG, Judge, first_sentence, make_judge
from alignment.evaluation.probe import probe_section, sft_probe_rows, summarize


def preference_pairs(rows: list[dict], max_rejected: int = 2, judge: Judge | None = None) -> list[dict]:
    """Model-aware preference pairs from probe rows (on-policy: the rejected answers are the model's own).

    Probed unknown: "I don't know" beats each distinct wrong answer the model gave (greedy first, then
    samples). Probed known: its own first right answer (else the first accepted one) beats "I don't know" and each
    distinct wrong answer it gave. Answers judged correct or abstaining are never rejected; where the judge reads
    only the first sentence, the pair holds only that sentence.

    With an operating point (rows carry ``idk_target``, see ``knowledge.with_idk_target``) the pairs follow the
    probe's rule as the demonstrations do. Below the threshold (True) "I don't know" beats each wrong answer, and a
    right answer is not preferred to it (the demonstrations taught "I don't know" there). Above it (False) no "I
    don't know" is taught: where the base was wrong there is no pair; where the base knew it (``world_known``, with
    its ``base_answer``) and the probed model gave it up, the base's right answer beats "I don't know" and each
    wrong answer (what keeps training from drifting past the operating point).
    """
    judge = judge or Judge()
    pairs = []
    for r in rows:
        wrong: list[str] = []
        right: list[str] = []
        for text in [r["greedy"], *r.get("samples", [])]:
            label = judge(text, r["answers"]) if text else None
            text = first_sentence(text) if judge.first_sentence else text  # what the judge read
            if label == WRONG and text not in wrong:
                wrong.append(text)
            elif label == CORRECT and not right:
                right.append(text)
        wrong = wrong[:max_rejected]
        target = r.get("idk_target")  # None: no operating point (R-Tuning's pairs)
        if not r["probed_known"] and target is False:
            if r.get("world_known") and r.get("base_answer"):  # known to the base, above the threshold: keep it
                chosen = first_sentence(r["base_answer"])
                pairs.append({"prompt": r["prompt"], "chosen": chosen, "rejected": IDK, "kind": "base_known>idk"})
                pairs += [
                    {"prompt": r["prompt"], "chosen": chosen, "rejected": w, "kind": "base_known>own_wrong"}
                    for w in wrong
                ]
            continue  # confidently wrong where the base was: no "I don't know" taught
        if r["probed_known"]:
            chosen = right[0] if right else r["answers"][0]  # its own right answer, in its own words
            if target is not True:  # below the threshold its right answer is not preferred to "I don't know"
                kind = "probe_known_correct>idk"
                pairs.append({"prompt": r["prompt"], "chosen": chosen, "rejected": IDK, "kind": kind})
            kind = "probe_known_correct>own_wrong"
        else:
            kind, chosen = "probe_unknown_idk>own_wrong", IDK
        pairs += [{"prompt": r["prompt"], "chosen": chosen, "rejected": w, "kind": kind} for w in wrong]
    return pairs


def pairs_stage(cfg: ProbeConfig, ctx: StageContext, data: RunData, base: Artifact, sft: Artifact) -> RunData:
    """Model-aware preference pairs: probe the SFT model on the preference questions and pair its own wrong
    answers against "I don't know" (probed unknown) or the gold answer (probed known). Returns the data with
    ``preferences`` naming the pairs it wrote (and the retrain's new pairs appended)."""
    if data.preference_questions is None:
        raise ValueError("probe-built pairs need preference questions (data.preference_source: probe)")
    max_rejected = ctx.cfg.data.max_rejected_per_question
    inputs = {"base": base.id, "sft": sft.id, "preference_questions": data.id("preference_questions")}
    section = probe_section(ctx) | {"max_rejected_per_question": max_rejected}

    def build(tmp: Path) -> dict:
        rows = sft_probe_rows(ctx, base, sft, data.rows("preference_questions"))
        write_jsonl(tmp / "probe.jsonl", rows)
        pairs = preference_pairs(rows, max_rejected, make_judge(ctx.cfg.judge))
        if not pairs:
            raise ValueError("the probe produced no preference pairs: the model made no wrong answer to reject")
        write_jsonl(tmp / "preferences.jsonl", pairs, sort_keys=True)
        kinds = Counter(p["kind"] for p in pairs)
        ctx.report("pairs", f"{len(pairs)} pairs {dict(kinds)}")
        return {"probe": summarize(rows), "pairs": len(pairs), "pairs_by_kind": dict(sorted(kinds.items()))}

    art = ctx.materialize("pairs", section, inputs, build, {"probed_model": sft.id})
    return merge(ctx, replace(data, preferences=DataSource(path=str(art.path / "preferences.jsonl"))), "preferences")
