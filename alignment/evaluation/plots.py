"""The report's figures (matplotlib, PNG): per-model summary and the sampling sweep."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from alignment.evaluation.metrics import METRICS  # noqa: E402

# The summary figure's panels, left to right (names in ``METRICS``, which titles them).
PANELS = ("perplexity", "win_rate", "prudence", "over_conservativeness")
POLICY_COLOURS = ("#cc6677", "#228833", "#ccbb44", "#aa3377", "#66ccee")  # the policies, in the run's order


def plot_summary(metrics: dict, path: Path) -> None:
    """Perplexity, win-rate, prudence and over-conservativeness per model, with 95% intervals."""
    policies = metrics.get("policies", [metrics["policy"]])
    names = [n for n in ("base", "sft", *policies) if n in metrics]
    colours = {"base": "#999999", "sft": "#4477aa"} | dict(zip(policies, POLICY_COLOURS * len(policies), strict=False))
    fig, axes = plt.subplots(1, len(PANELS), figsize=(14, 3.4))
    for ax, key in zip(axes, PANELS, strict=True):
        if key == "win_rate":  # stored once, vs SFT: SFT is 0.5 by definition, base is not compared
            shown = [n for n in names if n != "base"]
            vals = [
                {"value": 0.5, "ci95": [0.5, 0.5]}
                if n == "sft"
                else (metrics[n].get("win_rate_vs_sft") or metrics["win_rate_vs_sft"])["gold"]
                for n in shown
            ]
            ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        else:
            shown = names
            vals = [metrics[n][key] for n in shown]
        v = [x["value"] for x in vals]
        err = [[x["value"] - x["ci95"][0] for x in vals], [x["ci95"][1] - x["value"] for x in vals]]
        ax.bar(shown, v, yerr=err, capsize=4, color=[colours[n] for n in shown])
        ax.set_title(METRICS[key].title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(rows: list[dict], path: Path) -> None:
    """Hallucination rate and self-consistency against temperature, per model and top-p."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    series = sorted({(r["model"], r["top_p"]) for r in rows if r["temperature"] > 0})
    for model, top_p in series:
        pts = sorted(
            (r for r in rows if r["model"] == model and (r["top_p"] == top_p or r["temperature"] == 0)),
            key=lambda r: r["temperature"],
        )
        t = [r["temperature"] for r in pts]
        axes[0].plot(t, [r["hallucination_rate"] for r in pts], marker="o", label=f"{model}, top-p {top_p}")
        axes[1].plot(t, [r["self_consistency"] for r in pts], marker="o", label=f"{model}, top-p {top_p}")
    axes[0].set(title=f"{METRICS['hallucination_rate'].title} (unknown questions)", xlabel="temperature")
    axes[1].set(title="self-consistency (agreement with majority)", xlabel="temperature")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curve(points: list[dict], path: Path) -> None:
    """Proxy (reward model) and gold-judge reward of the policy's answers against its KL to SFT during RL."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    kl = [p["kl"] for p in points]
    ax.plot(kl, [p["proxy_reward"] for p in points], marker="o", label="proxy: reward model")
    ax2 = ax.twinx()
    ax2.plot(kl, [p["gold_reward"] for p in points], marker="s", color="#cc6677", label="gold judge")
    ax.set(xlabel="KL to SFT (per token)", ylabel="reward-model score", title="over-optimisation (Gao et al. 2022)")
    ax2.set_ylabel("gold reward (+1 / 0 / -1)")
    fig.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
