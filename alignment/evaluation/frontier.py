"""The model's own knowledge frontier (the real-facts run's ``frontier`` stage): what the model as given knows,
question by question, and how well its hidden state tells that before it answers.

The base (a real instruct model) is probed on every real-facts question: greedy on the SFT and preference
questions, greedy plus the probe's samples on the held-out ones (their SliCK category). A question counts as known
when the greedy answer is right: what the model would tell a user. Then a P(IK) probe (Kadavath et al. 2022): a
logistic regression of "known" on the hidden state at the prompt's last token, fit on the SFT and preference
questions with entity-grouped cross-validation (layer and regularisation chosen there, never on the held-out
questions), scored out-of-fold on those roles and, refit on both, on the held-out role. Each question's ``pik`` is
that score: the abstention signal of ``facts.max_known_abstention`` and the frontier the evaluation places every
model on (``alignment.evaluation.frontier_metrics``), beside the answer-confidence signal's.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignment.config.frontier import FrontierConfig
from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.data.facts import FILES
from alignment.data.records import read_jsonl, write_jsonl
from alignment.evaluation.frontier_metrics import auroc, frontier_summary
from alignment.evaluation.metrics import CORRECT, Judge, make_judge, strict_json
from alignment.evaluation.probe import CATEGORIES, probe
from alignment.models.refs import base_ref

TRAINING_ROLES = ("sft", "pref")


def with_knowledge(row: dict, greedy: str, judge: Judge, confidence: float | None, category: str | None = None) -> dict:
    """A QA row with the base's greedy answer, its confidence, ``known`` (that answer is right) and, if probed, its
    category."""
    known = judge(greedy, row["answers"]) == CORRECT
    out = dict(row) | {"base_answer": greedy, "base_confidence": confidence, "known": known}
    return out | ({"category": category} if category else {})


@dataclass(frozen=True)
class ProbeFit:
    """The P(IK) probe chosen by cross-validation: its layer and C, every layer's best cross-validated AUROC, and
    the scores (out-of-fold on the training questions, from the probe refit on all of them on the held-out ones)."""

    layer: int | None
    C: float | None
    cv_auroc: dict[int, float]
    train_scores: np.ndarray
    held_out_scores: np.ndarray


def _logistic(C: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))


def out_of_fold(x: np.ndarray, known: np.ndarray, groups: list[str], C: float, cfg: FrontierConfig) -> np.ndarray:
    """Each question's P(known) from a probe fit on the folds that do not hold its entity."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_splits=min(cfg.folds, len(set(groups))), shuffle=True, random_state=cfg.seed)
    scores = np.empty(len(known))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the least populated class has fewer members than n_splits"
        splits = list(folds.split(x, known, groups))
    for train, test in splits:
        if known[train].all() or not known[train].any():  # one kind only in the other folds: its share is all we know
            scores[test] = known[train].mean()
        else:
            scores[test] = _logistic(C, cfg.seed).fit(x[train], known[train]).predict_proba(x[test])[:, 1]
    return scores


def fit_probe(
    train: np.ndarray,
    known: np.ndarray,
    groups: list[str],
    held_out: np.ndarray,
    layers: list[int],
    cfg: FrontierConfig,
) -> ProbeFit:
    """Choose the layer and C by cross-validated AUROC on ``train`` (``[question, layer, hidden]``, with ``known``
    and each question's entity in ``groups``), then score ``held_out``. Without both kinds of question there is
    nothing to learn: every score is the known share, and no layer is chosen."""
    if known.all() or not known.any():
        share = float(known.mean()) if len(known) else 0.0
        return ProbeFit(None, None, {}, np.full(len(known), share), np.full(len(held_out), share))
    best: tuple[float, int, float, np.ndarray] | None = None
    cv_auroc: dict[int, float] = {}
    for j, layer in enumerate(layers):
        for C in cfg.Cs:
            scores = out_of_fold(train[:, j], known, groups, C, cfg)
            area = auroc(scores, known)
            cv_auroc[layer] = max(cv_auroc.get(layer, -1.0), area)
            if best is None or area > best[0]:
                best = (area, j, C, scores)
    _, j, C, scores = best
    refit = _logistic(C, cfg.seed).fit(train[:, j], known)
    return ProbeFit(layers[j], C, cv_auroc, scores, refit.predict_proba(held_out[:, j])[:, 1])


def _probe_the_base(ctx: StageContext, model, tok, questions: dict[str, list[dict]], judge: Judge) -> dict:
    """Every role's questions ``with_knowledge``: greedy answers and their confidence, and the held-out ones'
    categories (greedy plus samples); returns ``{role: rows}`` and the held-out probe's own rows under ``probe``."""
    from alignment.models.generation import generate_scored, generation_config

    probe_cfg = ctx.cfg.probe
    ctx.report("frontier", f"probing the base: {len(questions['eval'])} held-out questions, greedy + samples")
    probed = probe(model, tok, questions["eval"], probe_cfg, judge)
    settings = generation_config(tok, probe_cfg.max_new_tokens)
    rows: dict[str, list[dict]] = {"probe": probed}
    for role in TRAINING_ROLES:
        ctx.report("frontier", f"probing the base: {len(questions[role])} {role} questions, greedy")
        prompts = [q["question"] for q in questions[role]]
        cut = judge.stop_at_first_sentence
        scored = generate_scored(model, tok, prompts, settings, confidence=True, first_sentence_only=cut)
        rows[role] = [with_knowledge(q, a, judge, c) for q, (a, c) in zip(questions[role], scored, strict=True)]
    rows["eval"] = [
        with_knowledge(q, p["greedy"], judge, p["greedy_confidence"], p["category"])
        for q, p in zip(questions["eval"], probed, strict=True)
    ]
    return rows


def _layers(cfg: FrontierConfig, model) -> list[int]:
    from alignment.models.hidden_states import layer_count

    count = layer_count(model)
    layers = cfg.layers or list(range(1, count + 1))
    if max(layers) > count:
        raise ValueError(f"frontier.layers {cfg.layers}: the model has {count} layers (1 to {count})")
    return layers


def frontier_stage(cfg: FrontierConfig, ctx: StageContext, world: Artifact, base: Artifact) -> Artifact:
    """Probe the base on every real-facts question (``world``), fit the P(IK) probe and draw the frontier; writes
    each role's questions with ``known``, ``base_confidence`` and ``pik``, the held-out probe's rows and
    ``frontier.json`` (the probe's choice, AUROC per layer, and both signals' held-out frontiers)."""
    section = {
        "frontier": cfg.model_dump(mode="json"),
        "probe": ctx.cfg.probe.model_dump(mode="json"),
        "judge": ctx.cfg.judge.model_dump(mode="json"),
    }

    def build(tmp: Path) -> dict:
        from alignment.models.hidden_states import prompt_hidden_states
        from alignment.models.modeling import load_causal_lm, load_tokenizer

        questions = {role: read_jsonl(world.path / FILES[role], ("question", "answers")) for role in FILES}
        ref = base_ref(base, ctx.cfg.model)
        model, tok = load_causal_lm(ref, (), ctx.device().name), load_tokenizer(ref)
        layers = _layers(cfg, model)  # a bad layer is an error before the long generation
        rows = _probe_the_base(ctx, model, tok, questions, make_judge(ctx.cfg.judge))
        ctx.report("frontier", f"reading hidden states at {len(layers)} layers")
        states = {
            role: prompt_hidden_states(model, tok, [q["question"] for q in questions[role]], layers, cfg.batch_size)
            for role in FILES
        }
        del model
        train = [r for role in TRAINING_ROLES for r in rows[role]]
        known = np.array([r["known"] for r in train], dtype=bool)
        ctx.report("frontier", f"fitting the P(IK) probe: {len(layers)} layers x {len(cfg.Cs)} C x {cfg.folds} folds")
        fit = fit_probe(
            np.concatenate([states[role] for role in TRAINING_ROLES]),
            known,
            [str(r.get("entity", r["question"])) for r in train],
            states["eval"],
            layers,
            cfg,
        )
        scores = {"sft": fit.train_scores[: len(rows["sft"])], "pref": fit.train_scores[len(rows["sft"]) :]}
        scores["eval"] = fit.held_out_scores
        for role in FILES:
            rows[role] = [r | {"pik": float(s)} for r, s in zip(rows[role], scores[role], strict=True)]
            write_jsonl(tmp / FILES[role], rows[role])
        write_jsonl(tmp / "base_probe.jsonl", rows["probe"])
        summary = frontier_report(cfg, fit, rows["eval"], known)
        (tmp / "frontier.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        ctx.report("frontier", f"P(IK) probe: layer {fit.layer}, C {fit.C}, held-out AUROC {summary['auroc']['value']}")
        return {k: v for k, v in summary.items() if k not in ("curve", "confidence")}

    return ctx.materialize("frontier", section, {"world": world.id, "base": base.id}, build)


def frontier_report(cfg: FrontierConfig, fit: ProbeFit, held_out: list[dict], train_known: np.ndarray) -> dict:
    """``frontier.json``: the probe's choice and cross-validated AUROC per layer (training roles), its held-out
    AUROC and frontier, and the answer-confidence signal's beside it (held-out, 95% intervals). Undefined values
    (one kind of question only) are None."""
    known = [r["known"] for r in held_out]
    categories = Counter(r["category"] for r in held_out)
    out = {
        "layer": fit.layer,
        "C": fit.C,
        "cv_auroc_by_layer": {str(k): v for k, v in fit.cv_auroc.items()},
        "train_questions": {"known": int(train_known.sum()), "unknown": int((~train_known).sum())},
        "held_out_questions": {"known": sum(known), "unknown": len(known) - sum(known)},
        "held_out_categories": {c: categories[c] for c in CATEGORIES},
        **frontier_summary([r["pik"] for r in held_out], known, cfg.bootstrap_samples, cfg.seed),
        "confidence": frontier_summary(
            [r["base_confidence"] for r in held_out], known, cfg.bootstrap_samples, cfg.seed
        ),
    }
    return strict_json(out)
