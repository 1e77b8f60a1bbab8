"""What an RL run's over-optimisation curve shows (Gao et al. 2022): did the proxy reward keep rising after the
gold reward peaked?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def overoptimisation(points: Sequence[Mapping[str, float]]) -> dict:
    """What an RL run's curve (points with ``step``, ``kl``, ``proxy_reward``, ``gold_reward``) shows: where the
    gold reward peaked (its first maximum) and whether afterwards the proxy rose while gold fell; nothing where no
    point has a gold reward (prompts without accepted answers)."""
    scored = [p for p in points if p.get("gold_reward") is not None]
    if not scored:
        return {}
    peak = max(scored, key=lambda p: p["gold_reward"])
    last = scored[-1]
    return {
        "gold_peak_step": peak["step"],
        "gold_peak_kl": peak["kl"],
        "proxy_rises_after_gold_peak": last["step"] > peak["step"] and last["proxy_reward"] > peak["proxy_reward"],
        "gold_falls_after_peak": last["gold_reward"] < peak["gold_reward"],
    }
