"""The ablation comparison on hand-made metrics with known outcomes."""

from alignment.studies.ablation import RunResult, claims, render


def _metrics(sft_halluc, dpo_halluc, width=0.02):
    def m(v):
        return {"value": v, "ci95": [v - width, v + width]}

    stage = {"prudence": m(0.5), "accuracy_known": m(0.6), "over_conservativeness": m(0.0)}
    return {
        "policy": "dpo",
        "sft": stage | {"hallucination_rate": m(sft_halluc)},
        "dpo": stage | {"hallucination_rate": m(dpo_halluc)},
    }


def test_mismatch_claims_are_checked_against_every_other_run():
    runs = [
        RunResult("default", False, _metrics(0.94, 0.0)),
        RunResult("idk", False, _metrics(0.0, 0.0)),
        RunResult("mismatch", True, _metrics(0.95, 0.1)),
    ]
    found = claims(runs)
    # 0.95 vs 0.94 with +-0.02 intervals: higher, but not established; 0.95 vs 0.0: supported
    assert [verdict for _, verdict, _ in found] == ["not established (intervals overlap)", "supported", "supported"]
    page = render(runs)
    assert "## After SFT" in page and "| hallucination rate | 0.940 [0.920, 0.960] | 0.000" in page
    lines = page.splitlines()
    start = lines.index("| metric | default | idk | mismatch |")
    assert [row.split(" | ")[0] for row in lines[start + 2 : start + 6]] == [
        "| hallucination rate",
        "| prudence",
        "| accuracy (known)",
        "| over-conservativeness",
    ]
    assert lines[lines.index("## Definitions") + 2 :] == [
        "- **hallucination rate** (lower is better): "
        "share of unknown questions answered with a confident wrong answer.",
        '- **prudence** (higher is better): share of unknown questions answered "I don\'t know".',
        "- **accuracy (known)** (higher is better): exact match on questions the model knows.",
        '- **over-conservativeness** (lower is better): share of known questions answered "I don\'t know".',
    ]


def test_a_mismatch_that_does_not_raise_hallucination_is_reported_as_not_supported():
    runs = [RunResult("default", False, _metrics(0.9, 0.0)), RunResult("mismatch", True, _metrics(0.5, 0.6))]
    found = claims(runs)
    assert [verdict for _, verdict, _ in found] == ["not supported", "not supported"]
    assert render(runs).count("**not supported**") == 2


def _rl_metrics(sft, rloo, rm_win, width=0.02):
    """SFT and RLOO (hallucination, prudence) with a reward-model win-rate, as metrics.json holds them."""

    def m(v):
        return {"value": v, "ci95": [v - width, v + width]}

    def stage(h, p):
        return {"hallucination_rate": m(h), "prudence": m(p), "accuracy_known": m(0.6), "over_conservativeness": m(0)}

    wins = {"win_rate_vs_sft": {"gold": m(0.4), "reward_model": m(rm_win)}}
    return {"policy": "dpo", "policies": ["dpo", "rloo"], "sft": stage(*sft), "dpo": stage(0, 1) | wins} | {
        "rloo": stage(*rloo) | wins
    }


def test_labeller_claims_compare_rloo_with_its_sft_and_across_labellers():
    runs = [
        RunResult("rlhf", False, _rl_metrics((0.8, 0.1), (0.2, 0.7), 0.7)),
        RunResult("confident", False, _rl_metrics((0.8, 0.1), (0.95, 0.0), 0.8), labeller="confident"),
    ]
    found = claims(runs)
    assert found == [
        (
            "rloo against rlhf's reward model raises prudence above its SFT's",
            "supported",
            "SFT 0.100 [0.080, 0.120] -> rloo 0.700 [0.680, 0.720]",
        ),
        (
            "rloo against rlhf's reward model lowers hallucination below its SFT's",
            "supported",
            "SFT 0.800 [0.780, 0.820] -> rloo 0.200 [0.180, 0.220]",
        ),
        (
            "rloo against the confident labeller's reward model (confident) wins by that reward model",
            "supported",
            "reward-model win-rate vs SFT 0.800 [0.780, 0.820]",
        ),
        (
            "the gold judge sees confident's rloo hallucinate more than its SFT",
            "supported",
            "SFT 0.800 [0.780, 0.820] -> rloo 0.950 [0.930, 0.970]",
        ),
        (
            "rloo hallucinates more against the confident labeller (confident) than against rlhf's",
            "supported",
            "confident 0.950 [0.930, 0.970] vs rlhf 0.200 [0.180, 0.220]",
        ),
    ]
    page = render(runs)
    assert "## After rloo" in page and "| reward-model win-rate vs SFT | 0.800 [0.780, 0.820]" not in page
    assert "| reward-model win-rate vs SFT | 0.700 [0.680, 0.720] | 0.800 [0.780, 0.820] |" in page


def test_a_confident_labeller_whose_policy_loses_by_its_own_reward_model_is_not_supported():
    runs = [RunResult("confident", False, _rl_metrics((0.8, 0.1), (0.7, 0.2), 0.49), labeller="confident")]
    assert [verdict for _, verdict, _ in claims(runs)] == ["not supported", "not supported"]


def test_a_run_without_a_policy_stage_shows_a_dash():
    runs = [
        RunResult("default", False, _metrics(0.9, 0.0)),
        RunResult("rlhf", False, _rl_metrics((0.8, 0.1), (0.2, 0.7), 0.7)),
    ]
    page = render(runs).splitlines()
    rloo = page.index("## After rloo")
    assert page[rloo + 4] == "| hallucination rate | - | 0.200 [0.180, 0.220] |"
