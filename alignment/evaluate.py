"""The evaluation stage: base vs SFT vs policy on held-out data only.

Perplexity on the held-out reference text; accuracy, over-conservativeness, prudence, hallucination
rate and honesty on held-out questions; win-rate of the policy vs SFT by the gold judge and by the
trained reward model. Every number comes with a 95% bootstrap interval.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alignment.config import EvalConfig
from alignment.generation import document_nll, generate_answers
from alignment.metrics import GOLD_SCORE, behaviour_metrics, judge, perplexity_with_ci, win_rate_with_ci
from alignment.modeling import load_causal_lm, load_tokenizer
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
) -> dict:
    """Evaluate every model; write ``metrics.json``, ``answers.jsonl`` and ``report.md`` into out_dir."""
    tok = load_tokenizer(base)
    prompts = [q["prompt"] for q in questions]
    known = [q["known"] for q in questions]
    n_boot, seed = cfg.bootstrap_samples, cfg.seed
    metrics: dict = {}
    answers: dict[str, list[str]] = {}
    for spec in models:
        progress(f"evaluate: {spec.name}: perplexity on {len(reference_docs)} reference documents")
        model = load_causal_lm(base, spec.adapters, device)
        sums, counts = document_nll(model, tok, reference_docs)
        progress(f"evaluate: {spec.name}: answering {len(prompts)} held-out questions")
        answers[spec.name] = generate_answers(model, tok, prompts, cfg.max_new_tokens, cfg.batch_size)
        labels = [judge(a, q["answer"], idk) for a, q in zip(answers[spec.name], questions, strict=True)]
        metrics[spec.name] = {
            "perplexity": perplexity_with_ci(sums, counts, n_boot, seed),
            **behaviour_metrics(labels, known, n_boot, seed),
        }
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
    metrics["policy"] = policy
    metrics["n_questions"] = {"known": sum(known), "unknown": len(known) - sum(known)}
    metrics["n_reference_documents"] = len(reference_docs)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (out_dir / "answers.jsonl").open("w") as fh:
        for i, q in enumerate(questions):
            row = {"prompt": q["prompt"], "gold": q["answer"], "known": q["known"]}
            for name in answers:
                row[name] = {"answer": answers[name][i], "gold_score": gold[name][i], "reward": rm_scores[name][i]}
            fh.write(json.dumps(row) + "\n")
    write_report(metrics, out_dir / "report.md", context or {})
    return metrics
