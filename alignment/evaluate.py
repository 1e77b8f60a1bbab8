"""The evaluation stage: base vs SFT vs policy on held-out data only.

Perplexity on the held-out reference text; accuracy, over-conservativeness, prudence, hallucination
rate and honesty on held-out questions; win-rate of the policy vs SFT by the gold judge and by the
trained reward model. Every number comes with a 95% bootstrap interval.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alignment.config import EvalConfig
from alignment.generation import document_nll, generate_answers, mean_token_kl
from alignment.metrics import (
    GOLD_SCORE,
    WRONG,
    behaviour_metrics,
    judge,
    kl_with_ci,
    perplexity_with_ci,
    self_consistency,
    win_rate_with_ci,
)
from alignment.modeling import load_causal_lm, load_tokenizer
from alignment.plots import plot_summary, plot_sweep
from alignment.probe import agreement
from alignment.records import write_jsonl
from alignment.report import write_report
from alignment.reward import load_reward_model, score


@dataclass(frozen=True)
class ModelSpec:
    """A model to evaluate: the base directory plus the LoRA adapters merged into it, in order."""

    name: str
    adapters: Sequence[Path] = ()


def evaluate(
    cfg: EvalConfig,
    base: Path | str,
    models: Sequence[ModelSpec],
    reward_adapter: Path,
    questions: list[dict],
    reference_docs: list[str],
    out_dir: Path,
    policy: str = "dpo",
    device: str = "cpu",
    idk: str = "I don't know.",
    progress: Callable[[str], None] = print,
    context: dict | None = None,
    probe: list[dict] | None = None,
) -> dict:
    """Evaluate every model; write ``metrics.json``, ``answers.jsonl`` and ``report.md`` into out_dir."""
    tok = load_tokenizer(base)
    prompts = [q["prompt"] for q in questions]
    known = [q["known"] for q in questions]
    n_boot, seed = cfg.bootstrap_samples, cfg.seed
    metrics: dict = {}
    answers: dict[str, list[str]] = {}
    sweep: list[dict] = []
    reference = load_causal_lm(base, next(m.adapters for m in models if m.name == "sft"), device)
    for spec in models:
        progress(f"evaluate: {spec.name}: perplexity on {len(reference_docs)} reference documents")
        model = reference if spec.name == "sft" else load_causal_lm(base, spec.adapters, device)
        sums, counts = document_nll(model, tok, reference_docs)
        progress(f"evaluate: {spec.name}: answering {len(prompts)} held-out questions")
        answers[spec.name] = generate_answers(model, tok, prompts, cfg.max_new_tokens, cfg.batch_size)
        labels = [judge(a, q["answer"], idk) for a, q in zip(answers[spec.name], questions, strict=True)]
        kl = mean_token_kl(model, reference, tok, prompts, answers[spec.name], cfg.batch_size)
        metrics[spec.name] = {
            "perplexity": perplexity_with_ci(sums, counts, n_boot, seed),
            **behaviour_metrics(labels, known, n_boot, seed),
            "kl_to_reference": kl_with_ci(kl, n_boot, seed),
        }
        if probe is not None:
            probed_known = [row["probed_known"] for row in probe]
            metrics[spec.name]["by_probe"] = behaviour_metrics(labels, probed_known, n_boot, seed)
        if spec.name != "base":
            progress(f"evaluate: {spec.name}: sampling sweep")
            sweep += sampling_sweep(cfg, model, tok, questions, spec.name, idk)
        del model

    gold = {
        name: [GOLD_SCORE[judge(a, q["answer"], idk)] for a, q in zip(ans, questions, strict=True)]
        for name, ans in answers.items()
    }
    progress("evaluate: scoring answers with the reward model")
    rm = load_reward_model(base, reward_adapter, device)
    rm_scores = {name: score(rm, tok, prompts, ans, cfg.batch_size) for name, ans in answers.items()}
    win = {
        "gold": win_rate_with_ci(gold[policy], gold["sft"], n_boot, seed),
        "reward_model": win_rate_with_ci(rm_scores[policy], rm_scores["sft"], n_boot, seed),
    }
    win["judge_gap"] = win["reward_model"]["value"] - win["gold"]["value"]
    metrics["win_rate_vs_sft"] = win
    metrics["sampling_sweep"] = sweep
    if probe is not None:
        metrics["knowledge_probe"] = {"probed_model": "sft", **agreement(probe)}
        metrics["knowledge_probe"]["categories"] = dict(Counter(r["category"] for r in probe))
    metrics["policy"] = policy
    metrics["n_questions"] = {"known": sum(known), "unknown": len(known) - sum(known)}
    metrics["n_reference_documents"] = len(reference_docs)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = []
    for i, q in enumerate(questions):
        row = {"prompt": q["prompt"], "gold": q["answer"], "known": q["known"]}
        for name in answers:
            row[name] = {"answer": answers[name][i], "gold_score": gold[name][i], "reward": rm_scores[name][i]}
        rows.append(row)
    write_jsonl(out_dir / "answers.jsonl", rows)
    plot_summary(metrics, out_dir / "summary.png")
    plot_sweep(sweep, out_dir / "sampling_sweep.png")
    write_report(metrics, out_dir / "report.md", context or {})
    return metrics


def sampling_sweep(cfg: EvalConfig, model, tok, questions: list[dict], name: str, idk: str) -> list[dict]:
    """Hallucination rate (on unknown questions) and self-consistency across temperature x top-p."""
    prompts = [q["prompt"] for q in questions]
    rows = []
    for temperature in cfg.sweep_temperatures:
        for top_p in cfg.sweep_top_ps if temperature > 0 else [1.0]:
            n = cfg.sweep_samples if temperature > 0 else 1  # greedy answers are all the same
            samples = [
                generate_answers(model, tok, prompts, cfg.max_new_tokens, cfg.batch_size, temperature, top_p, seed=k)
                for k in range(n)
            ]
            per_question = list(zip(*samples, strict=True))
            unknown_labels = [
                judge(a, q["answer"], idk) for q, answers in zip(questions, per_question, strict=True)
                if not q["known"] for a in answers
            ]  # fmt: skip
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
