"""The ablation comparison on hand-made metrics with known outcomes."""

from alignment.ablation import RunResult, claims, render


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
