"""Comparing runs that differ in one data choice (e.g. the mismatched-knowledge ablation).

The inputs are each run's ``metrics.json``; the output is a Markdown page with one table per model
stage and a claim-by-claim check of the mismatched-knowledge story (Gekhman et al. 2024): SFT on facts
the model does not know raises hallucination, and DPO with "I don't know" pairs pulls it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alignment.metrics import METRICS, definitions, fmt

# The rows of each per-stage table (names in ``METRICS``, which titles and defines them).
COMPARED = ("hallucination_rate", "prudence", "accuracy_known", "over_conservativeness")


@dataclass(frozen=True)
class RunResult:
    """One run of the comparison: a name, whether its demonstrations are mismatched, its metrics."""

    name: str
    mismatch: bool
    metrics: dict
    evaluation: str = ""


def _verdict(a: dict, b: dict) -> str:
    """'supported' if ``a`` is above ``b`` with disjoint 95% intervals, 'not established' if only its point
    estimate is, else 'not supported'."""
    if a["ci95"][0] > b["ci95"][1]:
        return "supported"
    return "not established (intervals overlap)" if a["value"] > b["value"] else "not supported"


def claims(runs: list[RunResult]) -> list[tuple[str, str, str]]:
    """The mismatched-knowledge claims, each with its verdict and numbers: every mismatched run's SFT
    against every other run's SFT, and its policy against its SFT."""
    out = []
    for m in (r for r in runs if r.mismatch):
        sft_h = m.metrics["sft"]["hallucination_rate"]
        for other in (r for r in runs if not r.mismatch):
            other_h = other.metrics["sft"]["hallucination_rate"]
            out.append(
                (
                    f"SFT hallucinates more with mismatched demonstrations ({m.name}) than with {other.name}'s",
                    _verdict(sft_h, other_h),
                    f"{m.name} {fmt(sft_h)} vs {other.name} {fmt(other_h)}",
                )
            )
        policy = m.metrics["policy"]
        pol_h = m.metrics[policy]["hallucination_rate"]
        out.append(
            (
                f"{policy} with 'I don't know' pairs pulls {m.name}'s hallucination back below its SFT's",
                _verdict(sft_h, pol_h),
                f"SFT {fmt(sft_h)} -> {policy} {fmt(pol_h)}",
            )
        )
    return out


def render(runs: list[RunResult]) -> str:
    """The comparison page: per-stage tables (value [95% CI]) and the claims."""
    lines = ["# Ablation: what the demonstrations teach", ""]
    lines += [f"- **{r.name}**{' (mismatched knowledge)' if r.mismatch else ''}: `{r.evaluation}`" for r in runs]
    for stage in ("sft", "policy"):
        label = "SFT" if stage == "sft" else "policy (" + ", ".join(sorted({r.metrics["policy"] for r in runs})) + ")"
        lines += ["", f"## After {label}", "", "| metric | " + " | ".join(r.name for r in runs) + " |"]
        lines.append("|---" * (len(runs) + 1) + "|")
        for key in COMPARED:
            cells = [fmt(r.metrics[r.metrics["policy"] if stage == "policy" else "sft"][key]) for r in runs]
            lines.append(f"| {METRICS[key].title} | " + " | ".join(cells) + " |")
    found = claims(runs)
    lines += ["", "## What this comparison shows", ""]
    if not found:
        lines.append("No run has mismatched demonstrations, so there is no mismatched-knowledge claim to check.")
    for text, verdict, numbers in found:
        lines.append(f"- {verdict if verdict == 'supported' else f'**{verdict}**'}: {text}: {numbers}.")
    lines += [
        "",
        "Metrics are measured on held-out questions; intervals are 95% bootstrap intervals over questions. A run "
        "whose SFT never saw an 'I don't know' demonstration already answers nearly every unknown question, so "
        "against it the mismatch has little room.",
        "",
        "## Definitions",
        "",
        *definitions(COMPARED),
    ]
    return "\n".join(lines) + "\n"


def write_comparison(runs: list[RunResult], path: Path) -> str:
    """Write the comparison page atomically; returns its text."""
    text = render(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return text
