"""Comparing runs that differ in one data choice: the demonstrations (mismatched knowledge) or the labeller of
the preference pairs (confident labeller).

The inputs are each run's ``metrics.json``; the output is a Markdown page with one table per model stage and
a claim-by-claim check of the two stories. Mismatched knowledge (Gekhman et al. 2024): SFT on facts the model
does not know raises hallucination, and a policy trained on "I don't know" pairs pulls it back. The confident
labeller (the seeds' second root of hallucination): online RL against a reward model whose labellers preferred
a confident wrong answer to "I don't know" still wins by that reward model, while the gold judge sees
hallucination rise; against the default reward model, prudence rises and hallucination falls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alignment.config.policies import POLICIES
from alignment.evaluation.metrics import METRICS, definitions, fmt

# The rows of each per-stage table (names in ``METRICS``, which titles and defines them).
COMPARED = ("hallucination_rate", "prudence", "accuracy_known", "over_conservativeness")
WIN_RATES = {"win_rate": "gold", "reward_model_win_rate": "reward_model"}  # metric -> key in win_rate_vs_sft
ONLINE = tuple(p.name for p in POLICIES if "reward" in p.inputs)  # online RL against the labellers' reward model


@dataclass(frozen=True)
class RunResult:
    """One run of the comparison: a name, whether its demonstrations are mismatched, its metrics, where its
    evaluation is, and who labelled its preference pairs (``world.labeller``)."""

    name: str
    mismatch: bool
    metrics: dict
    evaluation: str = ""
    labeller: str = "idk"

    def estimate(self, stage: str, metric: str) -> dict | None:
        """The ``{value, ci95}`` of ``metric`` for ``stage`` (win-rates from the policy's own object); None
        when the run has no such stage."""
        return estimate(self.metrics, stage, metric)


def estimate(metrics: dict, model: str, metric: str) -> dict | None:
    """The ``{value, ci95}`` of ``metric`` for ``model`` in a ``metrics.json`` (win-rates: the policy's own object
    against SFT); None when the run has no such model or win-rate."""
    obj = metrics.get(model)
    if obj is None:
        return None
    if metric in WIN_RATES:
        return obj.get("win_rate_vs_sft", {}).get(WIN_RATES[metric])
    return obj[metric]


def _higher(a: dict, b: dict) -> str:
    """'supported' if ``a`` is above ``b`` with disjoint 95% intervals, 'not established' if only its point
    estimate is, else 'not supported'."""
    if a["ci95"][0] > b["ci95"][1]:
        return "supported"
    return "not established (intervals overlap)" if a["value"] > b["value"] else "not supported"


def _above_half(a: dict) -> str:
    """'supported' if the 95% interval of a win-rate lies above 0.5."""
    if a["ci95"][0] > 0.5:
        return "supported"
    return "not established (interval includes 0.5)" if a["value"] > 0.5 else "not supported"


def _mismatch_claims(runs: list[RunResult]) -> list[tuple[str, str, str]]:
    """Every mismatched run's SFT against every other run's SFT, and its first policy against its SFT."""
    out = []
    for m in (r for r in runs if r.mismatch):
        sft_h = m.metrics["sft"]["hallucination_rate"]
        for other in (r for r in runs if not r.mismatch):
            other_h = other.metrics["sft"]["hallucination_rate"]
            out.append(
                (
                    f"SFT hallucinates more with mismatched demonstrations ({m.name}) than with {other.name}'s",
                    _higher(sft_h, other_h),
                    f"{m.name} {fmt(sft_h)} vs {other.name} {fmt(other_h)}",
                )
            )
        policy = m.metrics["policy"]
        pol_h = m.metrics[policy]["hallucination_rate"]
        out.append(
            (
                f"{policy} with 'I don't know' pairs pulls {m.name}'s hallucination back below its SFT's",
                _higher(sft_h, pol_h),
                f"SFT {fmt(sft_h)} -> {policy} {fmt(pol_h)}",
            )
        )
    return out


def _labeller_claims(runs: list[RunResult]) -> list[tuple[str, str, str]]:
    """For every run with an online-RL policy (each of the registry's that learn against the reward model):
    against the default labeller's reward model it gains prudence and loses hallucination; against the
    confident labeller's it still wins by its reward model while the gold judge sees hallucination above SFT's,
    and above the default labeller's policy."""
    return [claim for online in ONLINE for claim in _online_claims(runs, online)]


def _online_claims(runs: list[RunResult], online: str) -> list[tuple[str, str, str]]:
    """The labeller claims of one online-RL policy."""
    out = []
    with_rl = [r for r in runs if online in r.metrics and not r.mismatch]
    for r in with_rl:
        sft, pol = r.metrics["sft"], r.metrics[online]
        if r.labeller == "confident":
            rm_win = r.estimate(online, "reward_model_win_rate")
            out.append(
                (
                    f"{online} against the confident labeller's reward model ({r.name}) wins by that reward model",
                    _above_half(rm_win),
                    f"reward-model win-rate vs SFT {fmt(rm_win)}",
                )
            )
            out.append(
                (
                    f"the gold judge sees {r.name}'s {online} hallucinate more than its SFT",
                    _higher(pol["hallucination_rate"], sft["hallucination_rate"]),
                    f"SFT {fmt(sft['hallucination_rate'])} -> {online} {fmt(pol['hallucination_rate'])}",
                )
            )
            for other in (o for o in with_rl if o.labeller != "confident"):
                other_h = other.metrics[online]["hallucination_rate"]
                out.append(
                    (
                        f"{online} hallucinates more against the confident labeller ({r.name}) than against "
                        f"{other.name}'s",
                        _higher(pol["hallucination_rate"], other_h),
                        f"{r.name} {fmt(pol['hallucination_rate'])} vs {other.name} {fmt(other_h)}",
                    )
                )
        else:
            out.append(
                (
                    f"{online} against {r.name}'s reward model raises prudence above its SFT's",
                    _higher(pol["prudence"], sft["prudence"]),
                    f"SFT {fmt(sft['prudence'])} -> {online} {fmt(pol['prudence'])}",
                )
            )
            out.append(
                (
                    f"{online} against {r.name}'s reward model lowers hallucination below its SFT's",
                    _higher(sft["hallucination_rate"], pol["hallucination_rate"]),
                    f"SFT {fmt(sft['hallucination_rate'])} -> {online} {fmt(pol['hallucination_rate'])}",
                )
            )
    return out


def claims(runs: list[RunResult]) -> list[tuple[str, str, str]]:
    """The claims the runs can check, each as (claim, verdict, numbers): mismatched knowledge where a run has
    mismatched demonstrations, the labeller story where a run has an online-RL policy."""
    return _mismatch_claims(runs) + _labeller_claims(runs)


def _stages(runs: list[RunResult]) -> list[str]:
    """SFT, then every policy of any run, in the order the runs list them."""
    policies = [p for r in runs for p in r.metrics.get("policies", [r.metrics["policy"]])]
    return ["sft", *dict.fromkeys(policies)]


def render(runs: list[RunResult]) -> str:
    """The comparison page: per-stage tables (value [95% CI], '-' where a run lacks the stage) and the claims."""
    lines = ["# Comparison: what the data teaches", ""]
    for r in runs:
        notes = [n for n, on in (("mismatched knowledge", r.mismatch), (f"{r.labeller} labeller", True)) if on]
        lines.append(f"- **{r.name}** ({', '.join(notes)}): `{r.evaluation}`")
    shown = list(COMPARED)
    for stage in _stages(runs):
        wins = [m for m in WIN_RATES if stage != "sft" and any(r.estimate(stage, m) for r in runs)]
        rows = (*COMPARED, *wins)
        shown += [m for m in wins if m not in shown]
        lines += ["", f"## After {'SFT' if stage == 'sft' else stage}", ""]
        lines += ["| metric | " + " | ".join(r.name for r in runs) + " |", "|---" * (len(runs) + 1) + "|"]
        for key in rows:
            cells = [fmt(e) if (e := r.estimate(stage, key)) else "-" for r in runs]
            lines.append(f"| {METRICS[key].title} | " + " | ".join(cells) + " |")
    found = claims(runs)
    lines += ["", "## What this comparison shows", ""]
    if not found:
        lines.append("No run has mismatched demonstrations or an online-RL policy, so there is no claim to check.")
    for text, verdict, numbers in found:
        lines.append(f"- {verdict if verdict == 'supported' else f'**{verdict}**'}: {text}: {numbers}.")
    lines += [
        "",
        "Metrics are measured on held-out questions; intervals are 95% bootstrap intervals over questions; a claim "
        "is supported only when the intervals do not overlap. An SFT model that rarely abstains already answers "
        "nearly every unknown question wrongly, which leaves a mismatch or a confident labeller little room to "
        "raise hallucination further.",
        "",
        "## Definitions",
        "",
        *definitions(shown),
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
