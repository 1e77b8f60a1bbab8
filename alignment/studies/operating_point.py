"""Where a recipe puts the model, measured on a training role: the greedy behaviour of the SFT model and of each
policy on the preference questions (the role the probe-built pairs come from; never the held-out one), beside the
point the operating point asks for there (``facts.max_known_abstention``'s rule on that role).

The place to choose a recipe's settings (a policy's strength, say) without touching the held-out questions:
``alignment operating-point CONFIG --set dpo.learning_rate=...`` builds what the config needs (reusing the store)
and prints one row per model. docs/real-facts.md shows it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from alignment.config.run import RunConfig
from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.evaluation.metrics import behaviour_indicators, make_judge, ratio
from alignment.models.refs import base_ref

SHARES = ("prudence", "over_conservativeness", "accuracy_known", "hallucination_rate")


@dataclass(frozen=True)
class RoleBehaviour:
    """One model's greedy behaviour on the preference role: each share of ``SHARES`` and the question counts."""

    model: str
    artifact: str
    shares: dict[str, float]
    known: int
    unknown: int


def greedy_shares(ctx: StageContext, base: Artifact, chain: list[Artifact], questions: list[dict]) -> dict:
    """Greedy answers of the base with ``chain``'s adapters merged in order, judged against ``questions``'
    ``known`` labels: ``SHARES`` (prudence too, which ``probe.greedy_behaviour`` of the pairs' probe rows lacks) and
    the counts. Greedy only: the probe's samples would cost a pass each and decide nothing here."""
    from alignment.models.generation import generate_answers, generation_config
    from alignment.models.modeling import load_causal_lm, load_tokenizer

    cfg = ctx.cfg
    ref = base_ref(base, cfg.model)
    model = load_causal_lm(ref, [a.path / "adapter" for a in chain], ctx.device().name)
    tok = load_tokenizer(ref)
    judge = make_judge(cfg.judge)
    settings = generation_config(tok, cfg.probe.max_new_tokens)
    cut = judge.stop_at_first_sentence
    answers = generate_answers(model, tok, [q["question"] for q in questions], settings, first_sentence_only=cut)
    labels = [judge(a, q["answers"]) for a, q in zip(answers, questions, strict=True)]
    known = [bool(q["known"]) for q in questions]
    shares = behaviour_indicators(labels, known)
    return {"shares": {k: ratio(*shares[k]) for k in SHARES}, "known": sum(known), "unknown": len(known) - sum(known)}


def targets(cfg: RunConfig) -> tuple[str, ...]:
    """The stages to build for the measurement: SFT and the config's policies. A config without real facts and
    probe-built pairs has no preference role with ``known`` labels: refused (ValueError) before any work."""
    if cfg.facts is None or cfg.data.preference_source != "probe":
        raise ValueError(
            "operating-point measures the preference role of a real-facts run with probe-built pairs "
            "(facts: set, data.preference_source: probe)"
        )
    return ("sft", *cfg.policies)


def preference_role(ctx: StageContext, built: dict) -> dict:
    """Measure the SFT model and each policy of ``built`` (the values of a run of ``targets``) on the preference
    questions. Returns ``asked`` (the rule's shares there, None without an operating point) and one
    ``RoleBehaviour`` per model, SFT first."""
    cfg, store = ctx.cfg, ctx.store
    questions = built["data"].rows("preference_questions")
    if not all(isinstance(q.get("known"), bool) for q in questions):
        raise ValueError("the preference questions carry no 'known' label: the base was not probed on them")
    base = built["base"]
    rows = []
    for name in ("sft", *cfg.policies):
        art = built[name]
        chain = [store.load(i) for i in art.manifest["model_chain"][1:]] + [art]
        rows.append(RoleBehaviour(name, art.id, **greedy_shares(ctx, base, chain, questions)))
    knowledge = store.load(Path(built["data"].sft.path).parent.name)  # the data stage's artifact
    rule = knowledge.metrics.get("rule_on_pref")
    asked = None
    if rule and cfg.facts.max_known_abstention is not None:
        asked = {"prudence": rule["abstains_on_unknown"], "over_conservativeness": rule["abstains_on_known"]}
    return {"asked": asked, "models": rows}


def table(result: dict) -> str:
    """The measurement as a markdown table: the rule's point first (where an operating point is set), then each
    model."""
    lines = [
        "| model | artifact | " + " | ".join(SHARES) + " |",
        "| --- | --- | " + " | ".join("---" for _ in SHARES) + " |",
    ]
    if result["asked"]:
        asked = result["asked"]
        lines.append("| asked by the rule | | " + " | ".join(_share(asked.get(k)) for k in SHARES) + " |")
    for row in result["models"]:
        lines.append(f"| {row.model} | {row.artifact} | " + " | ".join(_share(row.shares[k]) for k in SHARES) + " |")
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.3f}"
