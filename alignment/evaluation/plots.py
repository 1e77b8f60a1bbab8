"""The report's figures (matplotlib, PNG): per-model summary, the sampling sweep and the RL curve. Each is titled
with the run it shows (the evaluation's artifact id); rates are drawn on [0, 1], and lines that may coincide
differ in colour, marker and dash so one never hides another."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from alignment.evaluation.metrics import METRICS  # noqa: E402

# The summary figure's panels, left to right (names in ``METRICS``, which titles them).
PANELS = ("perplexity", "win_rate", "prudence", "over_conservativeness")
POLICY_COLOURS = ("#cc6677", "#228833", "#ccbb44", "#aa3377", "#66ccee")  # the policies, in the run's order
NOT_RATES = frozenset({"perplexity", "kl_to_reference"})  # every other metric is a share, drawn on [0, 1]
# Sweep series styles: colour-blind-safe colours, each with its own marker and dash, so series that coincide
# (two models that never hallucinate both sit on 0) still show as distinct lines.
SERIES_STYLES = tuple(
    {"color": c, "marker": m, "linestyle": ls, "markersize": ms}
    for c, m, ls, ms in zip(
        ("#4477aa", "#cc6677", "#228833", "#ccbb44", "#aa3377", "#66ccee", "#999999", "#332288"),
        ("o", "s", "^", "D", "v", "P", "X", "*"),
        ("-", "--", "-.", ":", "-", "--", "-.", ":"),
        (9, 7, 6, 5, 8, 6, 5, 7),
        strict=True,
    )
)
RATE_LIMITS = (-0.02, 1.02)  # [0, 1] with a margin so points on 0 and 1 are not cut in half


def plot_summary(metrics: dict, path: Path, run: str = "") -> None:
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
        bars = ax.bar(shown, v, yerr=err, capsize=4, color=[colours[n] for n in shown])
        ax.bar_label(bars, fmt="%.3g" if key in NOT_RATES else "%.2f", fontsize=8, padding=2)  # 0 still shows
        ax.set_title(METRICS[key].title, fontsize=10)
        if key in NOT_RATES:
            ax.margins(y=0.15)  # room for the value labels above the error bars
            ax.set_ylim(bottom=0)
        else:
            ax.set_ylim(0, 1)
    _title(fig, "per-model summary, 95% intervals", run)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(rows: list[dict], path: Path, run: str = "") -> None:
    """Hallucination rate and self-consistency against temperature, per model and top-p."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    series = sorted({(r["model"], r["top_p"]) for r in rows if r["temperature"] > 0})
    for (model, top_p), style in zip(series, SERIES_STYLES * len(series), strict=False):
        pts = sorted(
            (r for r in rows if r["model"] == model and (r["top_p"] == top_p or r["temperature"] == 0)),
            key=lambda r: r["temperature"],
        )
        t = [r["temperature"] for r in pts]
        for ax, key in zip(axes, ("hallucination_rate", "self_consistency"), strict=True):
            ax.plot(t, [r[key] for r in pts], label=f"{model}, top-p {top_p}", fillstyle="none", alpha=0.9, **style)
    axes[0].set(title=f"{METRICS['hallucination_rate'].title} (unknown questions)", xlabel="temperature")
    axes[1].set(title="self-consistency (agreement with majority)", xlabel="temperature")
    for ax in axes:
        ax.set_ylim(*RATE_LIMITS)
    if series:
        axes[1].legend(fontsize=8)
    _title(fig, "sampling sweep", run)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curve(points: list[dict], path: Path, run: str = "") -> None:
    """Proxy (reward model) and gold-judge reward of the policy's answers against its KL to SFT during RL (against
    the step where the run has no KL: ``beta`` 0); a point without a gold reward is left off that line."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    by_kl = all(p["kl"] is not None for p in points)
    x = [p["kl"] if by_kl else p["step"] for p in points]
    ax.plot(x, [p["proxy_reward"] for p in points], marker="o", label="proxy: reward model")
    ax2 = ax.twinx()
    gold = [(xi, p["gold_reward"]) for xi, p in zip(x, points, strict=True) if p["gold_reward"] is not None]
    if gold:
        ax2.plot(*zip(*gold, strict=True), marker="s", ls="--", color="#cc6677", label="gold judge")
    ax.set(xlabel="KL to SFT (per token)" if by_kl else "step", ylabel="reward-model score")
    ax2.set_ylabel("gold reward (+1 / 0 / -1)")
    ax2.set_ylim(-1.05, 1.05)  # the gold reward's whole range, so a flat curve is not magnified
    fig.legend(loc="lower right", fontsize=8)
    _title(fig, "over-optimisation (Gao et al. 2022)", run)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _title(fig: plt.Figure, what: str, run: str) -> None:
    """The figure's title: what it shows and, given, the run it comes from."""
    fig.suptitle(f"{what} — {run}" if run else what, fontsize=10)


def plot_frontier(metrics: dict, names: list[str], path: Path, run: str = "") -> None:
    """The knowledge frontier (over-conservativeness against prudence: the least a rule on the signal pays), for
    the P(IK) probe and for answer confidence with their 95% bands, and every model's own point on it."""
    fig, ax = plt.subplots(figsize=(5.4, 4.6))
    frontier = metrics["frontier"]
    confidence = frontier["confidence"]
    signals = (
        (frontier, f"P(IK) probe (AUROC {frontier['auroc']['value']:.2f})", SERIES_STYLES[0]),
        (confidence, f"answer confidence (AUROC {confidence['auroc']['value']:.2f})", SERIES_STYLES[6]),
    )
    for signal, label, style in signals:
        xs = [p["prudence"] for p in signal["curve"]]
        ys = [p["over_conservativeness"] for p in signal["curve"]]
        ax.plot(xs, [y["value"] for y in ys], color=style["color"], linestyle=style["linestyle"], label=label)
        ax.fill_between(xs, *zip(*(y["ci95"] for y in ys), strict=True), color=style["color"], alpha=0.15)
    for i, name in enumerate(names):
        model = metrics[name]
        style = SERIES_STYLES[1 + i % (len(SERIES_STYLES) - 2)]
        x, y = model["prudence"], model["over_conservativeness"]
        ax.errorbar(
            x["value"],
            y["value"],
            xerr=[[x["value"] - x["ci95"][0]], [x["ci95"][1] - x["value"]]],
            yerr=[[y["value"] - y["ci95"][0]], [y["ci95"][1] - y["value"]]],
            color=style["color"],
            marker=style["marker"],
            markersize=style["markersize"],
            linestyle="none",
            label=name,
        )
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=0.8, label="chance")
    ax.set(xlabel="prudence (unknown questions: I don't know)", ylabel="over-conservativeness (known: I don't know)")
    ax.set_xlim(*RATE_LIMITS)
    ax.set_ylim(*RATE_LIMITS)
    ax.legend(loc="upper left", fontsize=7)
    _title(fig, "the knowledge frontier", run)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
