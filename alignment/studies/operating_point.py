"""Where a recipe puts the model, measured on a training role: the greedy behaviour of the SFT model and of each
policy on the preference questions (the role the probe-built pairs come from; never the held-out one), beside the
point the operating point asks for there (``facts.max_known_abstention``'s rule on that role).

Beside each model's shares, how well its own inclination to say "I don't know" ranks the questions
(``abstention_auroc``: the AUROC at telling unknown from known of the log-probability margin of the IDK answer's first
token over the likeliest other first token), and beside the asked point the probe's (its out-of-fold P(IK) score): a
policy that only moves its threshold moves along its own ranking, so this says how far a recipe can get.

The place to choose a recipe's settings (a policy's strength, say) without touching the held-out questions:
``alignment operating-point CONFIG --set dpo.learning_rate=...`` builds what the config needs (reusing the store)
and prints one row per model. docs/real-facts.md shows it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alignment.config.run import RunConfig
from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.data.records import IDK
from alignment.evaluation.frontier_metrics import auroc
from alignment.evaluation.metrics import behaviour_indicators, make_judge, ratio
from alignment.evaluation.operating_point_stop import rule_shares
from alignment.models.refs import base_ref

SHARES = ("prudence", "over_conservativeness", "accuracy_known", "hallucination_rate")


@dataclass(frozen=True)
class RoleBehaviour:
    """One model's greedy behaviour on the preference role: each share of ``SHARES``, the question counts and the
    AUROC of its own abstention margin (``idk_margins``) at telling unknown questions from known ones."""

    model: str
    artifact: str
    shares: dict[str, float]
    known: int
    unknown: int
    abstention_auroc: float


@torch.no_grad()
def idk_margins(model, tok, questions: list[str], batch_size: int = 64) -> list[float]:
    """Per question, the log-probability of the "I don't know" answer's first token minus that of the likeliest
    other first token: above 0 its greedy answer starts with that token (mostly, not only, "I don't know"); the
    larger, the more readily it abstains. A ranking signal, not the greedy verdict."""
    from alignment.models.generation import chat_prompts

    prompts = chat_prompts(tok, questions)
    first = tok(IDK, add_special_tokens=False)["input_ids"][0]
    margins: list[float] = []
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        logp = model(**{k: v.to(model.device) for k, v in enc.items()}).logits[:, -1].float().log_softmax(-1)
        idk = logp[:, first].clone()
        logp[:, first] = -math.inf
        margins += (idk - logp.max(-1).values).tolist()
    return margins


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
    model.eval()
    margins = idk_margins(model, tok, [q["question"] for q in questions])
    return {
        "shares": {k: ratio(*shares[k]) for k in SHARES},
        "known": sum(known),
        "unknown": len(known) - sum(known),
        "abstention_auroc": auroc([-m for m in margins], known),
    }


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
    questions. Returns ``asked`` (the rule's shares there, None without an operating point), ``probe_auroc`` (the
    probe's out-of-fold score at telling them apart) and one ``RoleBehaviour`` per model, SFT first."""
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
    asked = rule_shares(questions)  # None without an operating point
    probe_auroc = (
        auroc([q["pik"] for q in questions], [q["known"] for q in questions])
        if all(isinstance(q.get("pik"), float) for q in questions)
        else math.nan
    )
    return {"asked": asked, "probe_auroc": probe_auroc, "models": rows}


def table(result: dict) -> str:
    """The measurement as a markdown table: the rule's point first (where an operating point is set; its AUROC is
    the probe's), then each model (the AUROC of its own abstention margin)."""
    lines = [
        "| model | artifact | " + " | ".join(SHARES) + " | AUROC |",
        "| --- | --- | " + " | ".join("---" for _ in SHARES) + " | --- |",
    ]
    if result["asked"]:
        asked = result["asked"]
        shares = " | ".join(_share(asked.get(k)) for k in SHARES)
        lines.append(f"| asked by the rule | | {shares} | {_share(result['probe_auroc'])} |")
    for row in result["models"]:
        shares = " | ".join(_share(row.shares[k]) for k in SHARES)
        lines.append(f"| {row.model} | {row.artifact} | {shares} | {_share(row.abstention_auroc)} |")
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.3f}"
