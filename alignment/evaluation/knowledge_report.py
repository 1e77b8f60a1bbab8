"""The report's sections on what each model knows: answers split by the base probe's knowledge categories, and the
world's facts per relation, stored (completed as text) vs answered (asked as a question)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def category_section(metrics: dict, names: Sequence[str]) -> list[str]:
    """Every model's answers split by the held-out questions' knowledge categories (where they have them): the
    shares right, "I don't know" and wrong (intervals in metrics.json)."""
    by = [n for n in names if "by_category" in metrics[n]]
    if not by:
        return []
    categories = list(metrics[by[0]]["by_category"])
    intro = (
        "The model as given was probed on every held-out question (greedy plus samples) and each question sorted "
        "into SliCK's categories (Gekhman et al. 2024): highly known (greedy and every sample right), maybe known "
        "(greedy right, some sample wrong), weakly known (greedy wrong, some sample right), unknown (never right). "
        "Each cell: right / I don't know / wrong."
    )

    def cell(shares: dict) -> str:
        return " / ".join(f"{shares[k]['value']:.2f}" for k in ("correct", "idk", "wrong"))

    rows = {category.replace("_", " "): category for category in categories}
    head = ["## By knowledge category", "", intro, "", *_self_knowledge(metrics)]
    return head + _split_table("category", "by_category", rows, metrics, by, cell)


def relation_section(metrics: dict, names: Sequence[str]) -> list[str]:
    """Per relation of the world's facts: how many held-out known facts each model stored (completes the corpus's
    own sentence, "Tedim lives in ...") and how many it answers when asked; a fact stored but not answered was
    lost on the way from the text to the question."""
    by = [n for n in names if "by_relation" in metrics[n]]
    if not by:
        return []
    intro = (
        "Held-out known questions per relation. Each cell: stored / answered, where stored is the share of these facts "
        "the model completes rightly as plain text (the corpus's own sentence up to the value) and answered the share "
        "of the questions it answers rightly (intervals in metrics.json)."
    )
    rows = {relation: relation for relation in metrics[by[0]]["by_relation"]}
    return ["## Knowledge by relation", "", intro, ""] + _split_table(
        "relation", "by_relation", rows, metrics, by, stored_answered
    )


def stored_answered(entry: dict) -> str:
    """One relation's "stored / answered" shares (``by_relation`` of metrics.json)."""
    stored = entry.get("stored_known", {}).get("value", math.nan)
    return f"{stored:.2f} / {entry['accuracy_known']['value']:.2f}"


def _split_table(
    column: str, split: str, rows: dict[str, str], metrics: dict, by: Sequence[str], cell: Callable[[dict], str]
) -> list[str]:
    """A table of the questions split by ``split`` (``by_category`` or ``by_relation``): a row per part (shown name ->
    key), its question count, and one ``cell`` per model."""
    lines = [
        f"| {column} | questions | " + " | ".join(by) + " |",
        "| --- | --- | " + " | ".join("---" for _ in by) + " |",
    ]
    for shown, key in rows.items():
        cells = " | ".join(cell(metrics[name][split][key]) for name in by)
        lines.append(f"| {shown} | {metrics[by[0]][split][key]['questions']} | {cells} |")
    return lines + [""]


def _self_knowledge(metrics: dict) -> list[str]:
    auroc = metrics.get("base_confidence_auroc")
    if auroc is None or math.isnan(auroc):
        return []
    return [
        f"How well the model as given can tell what it knows: its confidence in its greedy answer (mean token "
        f"log-probability) ranks a known question above an unknown one with probability {auroc:.2f} (AUROC; 0.5 is "
        "chance). A policy that learns to abstain from that signal can do no better than it separates.",
        "",
    ]


def frontier_section(metrics: dict, names: Sequence[str]) -> list[str]:
    """Where every model sits on the base's knowledge frontier: the frontier's AUROC, the figure, and per model its
    prudence, over-conservativeness, frontier gap and truthfulness (with intervals)."""
    frontier = metrics.get("frontier")
    if not frontier:
        return []
    from alignment.evaluation.metrics import fmt

    probe, confidence = frontier["auroc"], frontier["confidence"]["auroc"]
    intro = (
        "A linear probe on the base's hidden state at the end of each question, fit on the SFT and preference "
        "questions (entity-grouped cross-validation), tells the held-out questions it knows from those it does not "
        f"with AUROC {fmt(probe)}; its confidence in its own greedy answer, {fmt(confidence)}. Abstaining where a "
        "signal is low traces a frontier: the least over-conservativeness any rule on it pays for a given prudence. "
        "A model's frontier gap is its over-conservativeness minus the P(IK) frontier's at its prudence (0: as "
        "selective as the probe allows; below 0: more selective than the probe). Truthfulness: accuracy minus "
        "hallucination over all held-out questions (TruthRL)."
    )
    rows = [
        f"| {name} | {fmt(m['prudence'])} | {fmt(m['over_conservativeness'])} | {fmt(m['frontier_gap'])} "
        f"| {fmt(m['truthfulness'])} |"
        for name in names
        if "frontier_gap" in (m := metrics[name])
    ]
    head = "| model | prudence | over-conservativeness | frontier gap | truthfulness |"
    return [
        "## The knowledge frontier",
        "",
        intro,
        "",
        head,
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        "![every model on the base's knowledge frontier](frontier.png)",
        "",
    ]
