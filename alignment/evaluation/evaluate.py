"""The evaluation stage: base vs SFT vs policy on held-out data only.

Perplexity on the held-out reference text; accuracy, over-conservativeness, prudence, hallucination
rate and honesty on held-out questions; win-rate of the policy vs SFT by the gold judge and by the
trained reward model. Every number comes with a 95% bootstrap interval. The evaluation writes
``metrics.json`` and ``answers.jsonl``; the report is rendered from them by its own stage.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alignment.config.evaluation import EvalConfig
from alignment.core.context import StageContext
from alignment.core.progress import Progress, ProgressEvent
from alignment.core.store import Artifact
from alignment.data.records import write_jsonl
from alignment.data.run_data import RunData
from alignment.evaluation.frontier_metrics import auroc, frontier_gap, frontier_summary
from alignment.evaluation.metrics import (
    GOLD_SCORE,
    WRONG,
    Judge,
    behaviour_metrics,
    kl_with_ci,
    label_shares,
    make_judge,
    perplexity_with_ci,
    relation_accuracy,
    self_consistency,
    strict_json,
    win_rate_with_ci,
)
from alignment.evaluation.probe import CATEGORIES, agreement, load_probe
from alignment.models.refs import BaseRef, base_ref, policy_adapters

SCHEMA_VERSION = 3  # metrics.json: 2 adds schema_version; 3 adds truthfulness per model, and frontier (top level) and
# frontier_gap (per model) where the base's P(IK) probe scored the questions; the {"value", "ci95"} objects are as in 1


@dataclass(frozen=True)
class ModelSpec:
    """A model to evaluate: the base directory plus the LoRA adapters merged into it, in order."""

    name: str
    adapters: Sequence[Path] = ()


@dataclass(frozen=True)
class Evaluation:
    """What is evaluated on what: the models (one named ``sft``, the reference), the reward model that
    judges them, the held-out questions (``question``, ``answers``, optional ``known``) and reference
    documents, the gold judge, and the probe's rows. Known vs unknown is the questions' own ``known`` where
    every question has one (the world's construction), else the probe's measurement."""

    base: BaseRef
    models: Sequence[ModelSpec]
    reward_adapter: Path
    questions: list[dict]
    reference_docs: list[str]
    judge: Judge
    probe: list[dict] | None = None
    policies: Sequence[str] = ("dpo",)
    known_from: str = "construction"  # what the questions' own ``known`` says: how the world was built, or a probe
    curves: dict[str, list[dict]] = field(default_factory=dict)  # policy -> its over-optimisation curve

    def known(self) -> tuple[list[bool], str]:
        """Which questions count as known, and by what: the questions' own ``known`` (``known_from``) or "probe"."""
        if all(q["known"] is not None for q in self.questions):
            return [q["known"] for q in self.questions], self.known_from
        if self.probe is None:
            raise ValueError("the questions say nothing of what the model knows, and no probe measured it")
        return [row["probed_known"] for row in self.probe], "probe"


def evaluate(cfg: EvalConfig, job: Evaluation, out_dir: Path, device: str, progress: Progress) -> dict:
    """Evaluate every model; write ``metrics.json`` and ``answers.jsonl`` into ``out_dir``."""
    from alignment.models.generation import (
        document_nll,
        generate_answers,
        generation_config,
        mean_token_kl,
        reward_scores,
    )
    from alignment.models.modeling import load_causal_lm, load_reward_model, load_tokenizer

    def say(message: str) -> None:
        progress(ProgressEvent("evaluate", message))

    tok = load_tokenizer(job.base)
    questions = job.questions
    prompts = [q["question"] for q in questions]
    known, known_from = job.known()
    n_boot, seed = cfg.bootstrap_samples, cfg.seed
    pik = [q.get("pik") for q in questions]
    frontier = all(p is not None for p in pik)  # the base's P(IK) probe scored every question (real facts)
    greedy = generation_config(tok, cfg.max_new_tokens)
    metrics: dict = {"schema_version": SCHEMA_VERSION}
    answers: dict[str, list[str]] = {}
    sweep: list[dict] = []
    reference = load_causal_lm(job.base, next(m.adapters for m in job.models if m.name == "sft"), device)
    for spec in job.models:
        say(f"{spec.name}: perplexity on {len(job.reference_docs)} reference documents")
        model = reference if spec.name == "sft" else load_causal_lm(job.base, spec.adapters, device)
        sums, counts = document_nll(model, tok, job.reference_docs)
        say(f"{spec.name}: answering {len(prompts)} held-out questions")
        answers[spec.name] = generate_answers(
            model, tok, prompts, greedy, batch_size=cfg.batch_size, first_sentence_only=job.judge.stop_at_first_sentence
        )
        labels = [job.judge(a, q["answers"]) for a, q in zip(answers[spec.name], questions, strict=True)]
        kl = mean_token_kl(model, reference, tok, prompts, answers[spec.name], cfg.batch_size)
        metrics[spec.name] = {
            "perplexity": perplexity_with_ci(sums, counts, n_boot, seed),
            **behaviour_metrics(labels, known, n_boot, seed),
            "kl_to_reference": kl_with_ci(kl, n_boot, seed),
        }
        if frontier:
            metrics[spec.name]["frontier_gap"] = frontier_gap(labels, known, pik, n_boot, seed)
        if job.probe is not None and known_from != "probe":
            probed_known = [row["probed_known"] for row in job.probe]
            metrics[spec.name]["by_probe"] = behaviour_metrics(labels, probed_known, n_boot, seed)
        if all(q.get("relation") for q in questions):  # the world's: which relation (city, job, pet) each asks
            metrics[spec.name]["by_relation"] = by_relation(cfg, job, (model, tok), labels, known)
        if any(q.get("category") for q in questions):  # the questions' knowledge categories (a probe of the base)
            metrics[spec.name]["by_category"] = {
                category: label_shares(
                    [lab for lab, q in zip(labels, questions, strict=True) if q["category"] == category], n_boot, seed
                )
                for category in sorted({q["category"] for q in questions}, key=_category_order)
            }
        if spec.name != "base":
            say(f"{spec.name}: sampling sweep")
            sweep += sampling_sweep(cfg, job, (model, tok), spec.name, known)
        del model

    gold = {
        name: [GOLD_SCORE[job.judge(a, q["answers"])] for a, q in zip(ans, questions, strict=True)]
        for name, ans in answers.items()
    }
    say("scoring answers with the reward model")
    rm = load_reward_model(job.base, job.reward_adapter, device)
    # each distinct (question, answer) scored once: two models' identical answers tie exactly (scored apart, in
    # batches padded differently, they would differ in the last float bits, and that noise would decide the win)
    distinct = sorted({(p, a) for ans in answers.values() for p, a in zip(prompts, ans, strict=True)})
    scores = reward_scores(rm, tok, [p for p, _ in distinct], [a for _, a in distinct], cfg.batch_size)
    score = dict(zip(distinct, scores, strict=True))
    rm_scores = {name: [score[p, a] for p, a in zip(prompts, ans, strict=True)] for name, ans in answers.items()}
    for policy in job.policies:
        win = {
            "gold": win_rate_with_ci(gold[policy], gold["sft"], n_boot, seed),
            "reward_model": win_rate_with_ci(rm_scores[policy], rm_scores["sft"], n_boot, seed),
        }
        win["judge_gap"] = win["reward_model"]["value"] - win["gold"]["value"]
        metrics[policy]["win_rate_vs_sft"] = win
    metrics["win_rate_vs_sft"] = metrics[job.policies[0]]["win_rate_vs_sft"]
    for policy, points in job.curves.items():
        metrics[policy]["curve"] = points  # the first policy's, as in schema 1
    metrics["sampling_sweep"] = sweep
    if job.probe is not None:
        metrics["knowledge_probe"] = {"probed_model": "sft", **agreement(job.probe)}
        metrics["knowledge_probe"]["categories"] = dict(Counter(r["category"] for r in job.probe))
    metrics["policy"], metrics["policies"] = job.policies[0], list(job.policies)
    metrics["known_from"] = known_from
    if all(q.get("base_confidence") is not None for q in questions):  # the base probe's confidence (real facts)
        metrics["base_confidence_auroc"] = auroc([q["base_confidence"] for q in questions], known)
    if frontier:
        metrics["frontier"] = {
            "signal": "the base's P(IK) probe on its hidden state at the end of the question",
            **frontier_summary(pik, known, n_boot, seed),
            "confidence": frontier_summary([q["base_confidence"] for q in questions], known, n_boot, seed),
        }
    metrics["n_questions"] = {"known": sum(known), "unknown": len(known) - sum(known)}
    metrics["n_reference_documents"] = len(job.reference_docs)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(strict_json(metrics), indent=2, allow_nan=False) + "\n")
    rows = []
    for i, q in enumerate(questions):
        row = {"prompt": q["question"], "gold": q["answers"], "known": known[i]}
        for name in answers:
            row[name] = {"answer": answers[name][i], "gold_score": gold[name][i], "reward": rm_scores[name][i]}
        rows.append(row)
    write_jsonl(out_dir / "answers.jsonl", rows)
    return metrics


def by_relation(cfg: EvalConfig, job: Evaluation, model_and_tok: tuple, labels: list[str], known: list[bool]) -> dict:
    """Accuracy on known questions per relation and, where every question has a ``statement``, how many of those
    facts the model completes rightly (greedy, as plain text): knowledge stored vs knowledge the model answers."""
    from alignment.models.generation import complete_texts, generation_config

    model, tok = model_and_tok
    questions = job.questions
    stored = None
    if all(q.get("statement") for q in questions):  # only the known questions' facts count: only they are completed
        greedy = generation_config(tok, cfg.max_new_tokens)
        asked = [i for i, k in enumerate(known) if k]
        completions = complete_texts(model, tok, [questions[i]["statement"] for i in asked], greedy, cfg.batch_size)
        completes = Judge(job.judge.idk, match="contains")  # the value anywhere in the first sentence ("a baker.")
        stored = [None] * len(questions)
        for i, completion in zip(asked, completions, strict=True):
            stored[i] = completes(completion, questions[i]["answers"])
    relations = [q["relation"] for q in questions]
    return relation_accuracy(labels, known, relations, stored, cfg.bootstrap_samples, cfg.seed)


def _category_order(category: str) -> tuple[int, str]:
    return (CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES), category)


def sampling_sweep(cfg: EvalConfig, job: Evaluation, model_and_tok: tuple, name: str, known: list[bool]) -> list[dict]:
    """Hallucination rate (on unknown questions) and self-consistency across temperature x top-p."""
    from alignment.models.generation import generate_answers, generation_config

    model, tok = model_and_tok
    questions = job.questions
    prompts = [q["question"] for q in questions]
    rows = []
    for temperature in cfg.sweep_temperatures:
        for top_p in cfg.sweep_top_ps if temperature > 0 else [1.0]:
            n = cfg.sweep_samples if temperature > 0 else 1  # greedy answers are all the same
            settings = generation_config(tok, cfg.max_new_tokens, temperature, top_p)
            samples = [
                generate_answers(
                    model,
                    tok,
                    prompts,
                    settings,
                    batch_size=cfg.batch_size,
                    seed=k,
                    first_sentence_only=job.judge.stop_at_first_sentence,
                )
                for k in range(n)
            ]
            per_question = list(zip(*samples, strict=True))
            unknown_labels = [
                job.judge(a, q["answers"])
                for q, is_known, answers in zip(questions, known, per_question, strict=True)
                if not is_known
                for a in answers
            ]
            rows.append(
                {
                    "model": name,
                    "temperature": temperature,
                    "top_p": top_p,
                    "samples": n,
                    "hallucination_rate": unknown_labels.count(WRONG) / max(len(unknown_labels), 1),
                    "self_consistency": self_consistency(per_question),
                }
            )
    return rows


def evaluate_stage(
    cfg: EvalConfig, ctx: StageContext, data: RunData, base: Artifact, sft: Artifact, *, reward, probe=None, **policies
) -> Artifact:
    """Evaluate base, SFT and every policy (the config's ``policies``, in its order) on held-out data; ``reward``
    judges, ``probe`` splits by probed knowledge. Writes metrics.json and answers.jsonl."""
    names = [p for p in ctx.cfg.policies if p in policies]
    inputs = {"base": base.id, "sft": sft.id, **{p: policies[p].id for p in names}, "reward": reward.id}
    inputs |= {"probe": probe.id} if probe is not None else {}
    inputs |= {"questions": data.id("questions"), "reference": data.id("reference")}

    def build(tmp: Path) -> dict:  # the data is loaded only when the evaluation runs, not when it is reused
        sft_adapter = sft.path / "adapter"
        job = Evaluation(
            base=base_ref(base, ctx.cfg.model),
            models=[
                ModelSpec("base"),
                ModelSpec("sft", [sft_adapter]),
                *[ModelSpec(p, policy_adapters(policies[p], sft)) for p in names],
            ],
            reward_adapter=reward.path / "adapter",
            questions=data.rows("questions"),
            reference_docs=data.reference_documents(),
            judge=make_judge(ctx.cfg.judge),
            probe=load_probe(probe.path / "probe.jsonl") if probe is not None else None,
            policies=names,
            known_from="base probe (its greedy answer is right)" if ctx.cfg.facts is not None else "construction",
            curves={
                p: json.loads(curve.read_text()) for p in names if (curve := policies[p].path / "curve.json").is_file()
            },
        )
        metrics = evaluate(cfg, job, tmp, ctx.device().name, ctx.progress)
        summary = {m: {k: v["value"] for k, v in metrics[m].items() if "value" in v} for m in ("base", "sft", *names)}
        for p in names:
            summary[p]["win_rate_vs_sft"] = {
                k: v if isinstance(v, float) else v["value"] for k, v in metrics[p]["win_rate_vs_sft"].items()
            }
        return summary

    section = {"eval": cfg.model_dump(mode="json"), "judge": ctx.cfg.judge.model_dump(mode="json")}
    return ctx.materialize("evaluate", section, inputs, build, {"model_chain": [base.id]})
