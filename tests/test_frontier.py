"""The knowledge frontier: the abstention curve of a self-knowledge signal, a model's gap to it, the P(IK) probe's
entity-grouped fit, and the hidden state it reads."""

import numpy as np
import pytest
from test_gguf import write_tiny_gguf

from alignment.config.frontier import FrontierConfig
from alignment.evaluation.frontier import fit_probe, out_of_fold
from alignment.evaluation.frontier_metrics import abstention_curve, auroc, frontier_at, frontier_gap, frontier_summary
from alignment.evaluation.metrics import behaviour_metrics

# Four known questions scored 0.9, 0.8, 0.6, 0.3 and four unknown ones 0.7, 0.4, 0.2, 0.1.
SCORES = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1])
KNOWN = np.array([True] * 4 + [False] * 4)


def test_the_abstention_curve_is_every_threshold_of_the_signal_in_order():
    prudence, over = abstention_curve(SCORES, KNOWN)
    # abstain below t, t rising past 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9
    assert prudence.tolist() == [0, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1, 1]
    assert over.tolist() == [0, 0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 1]
    assert auroc(SCORES, KNOWN) == 13 / 16  # pairs (known above unknown): 4 + 4 + 3 + 2 of 16
    tied_prudence, tied_over = abstention_curve(np.array([0.5, 0.5, 0.5]), np.array([True, False, False]))
    assert (tied_prudence.tolist(), tied_over.tolist()) == ([0, 1], [0, 1])  # a tie moves both at once
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert np.isnan(auroc([0.5, 0.4], [True, True]))  # no unknown question: undefined


def test_the_frontier_is_the_least_over_conservativeness_for_a_prudence_mixing_neighbouring_thresholds():
    curve = abstention_curve(SCORES, KNOWN)
    # 0.5 prudence costs nothing (abstain below 0.3); past it the next unknown (0.4) comes after a known one (0.3),
    # so up to 0.75 it costs 0.25; 0.2 prudence mixes "below 0.1" (0, 0) and "below 0.2" (0.25, 0)
    assert frontier_at([0, 0.2, 0.5, 0.625, 0.75, 1.0], curve).tolist() == [0, 0, 0, 0.25, 0.25, 0.5]
    assert frontier_at(0.875, curve).tolist() == [0.5]  # between (0.75, 0.5) and (1, 0.5)
    perfect = abstention_curve(KNOWN.astype(float), KNOWN)
    assert frontier_at([0.3, 1.0], perfect).tolist() == [0, 0]  # a signal that knows: nothing known given up
    assert frontier_at(0.3, abstention_curve(np.zeros(8), KNOWN)).tolist() == [0.3]  # no signal: the diagonal


def test_a_models_frontier_gap_is_its_over_conservativeness_above_the_frontier_at_its_prudence():
    labels = ["correct", "idk", "correct", "idk", "idk", "idk", "idk", "wrong"]  # prudence 0.75, over 0.5
    gap = frontier_gap(labels, KNOWN, SCORES, samples=200, seed=0)
    assert gap["value"] == 0.25  # the frontier pays 0.25 at 0.75
    assert gap["ci95"][0] <= 0.25 <= gap["ci95"][1]
    on_it = ["correct", "correct", "correct", "idk", "wrong", "idk", "idk", "idk"]  # abstains below 0.4: on it
    assert frontier_gap(on_it, KNOWN, SCORES, samples=50, seed=0)["value"] == 0.0


def test_the_frontier_summary_has_the_auroc_and_the_curve_on_a_grid_with_intervals():
    summary = frontier_summary(SCORES, KNOWN, samples=100, seed=0)
    assert summary["auroc"]["value"] == 13 / 16
    assert [p["prudence"] for p in summary["curve"]] == [round(0.05 * i, 2) for i in range(21)]
    at = {p["prudence"]: p["over_conservativeness"] for p in summary["curve"]}
    assert at[0.75]["value"] == 0.25 and at[0.75]["ci95"][0] <= 0.25 <= at[0.75]["ci95"][1]


def test_truthfulness_is_accuracy_minus_hallucination_over_every_question():
    metrics = behaviour_metrics(["correct", "correct", "idk", "wrong"], [True, False, True, False], samples=50)
    assert metrics["truthfulness"]["value"] == 0.25  # (2 - 1) / 4


def _features(seed: int, n_entities: int = 60, per_entity: int = 3):
    """Layer 1 noise, layer 2 a noisy copy of "known"; every entity asked three questions, all known or none."""
    rng = np.random.default_rng(seed)
    known = np.repeat(rng.random(n_entities) < 0.4, per_entity)
    groups = [f"e{i // per_entity}" for i in range(len(known))]
    signal = known[:, None] * 1.5 + rng.normal(size=(len(known), 4))
    return np.stack([rng.normal(size=(len(known), 4)), signal], 1), known, groups


def test_the_probe_chooses_the_layer_that_knows_by_entity_grouped_cross_validation():
    train, known, groups = _features(0)
    held_out, held_known, _ = _features(1)
    cfg = FrontierConfig(folds=4, Cs=[0.01, 1.0])
    fit = fit_probe(train, known, groups, held_out, [3, 7], cfg)
    assert fit.layer == 7 and fit.C in (0.01, 1.0)
    assert fit.cv_auroc[7] > 0.8 > 0.65 > fit.cv_auroc[3]
    assert auroc(fit.held_out_scores, held_known) > 0.8
    assert fit.train_scores.shape == known.shape and ((0 < fit.train_scores) & (fit.train_scores < 1)).all()


def test_out_of_fold_scores_never_come_from_a_probe_that_saw_the_same_entity():
    x = np.zeros((6, 1))
    x[:, 0] = [1, 1, -1, -1, 1, -1]
    known = np.array([True, True, False, False, False, True])
    # entity c says the opposite of a and b (x = 1 unknown, x = -1 known): scored by a probe fit on a and b alone
    # (three entities, three folds: each its own), it gets the opposite of its labels
    groups = ["a", "a", "b", "b", "c", "c"]
    scores = out_of_fold(x, known, groups, 1.0, FrontierConfig(folds=3))
    assert scores[0] == scores[1] and scores[2] == scores[3]  # one entity, one fold, one probe
    assert scores[4] > 0.5 > scores[5]


def test_without_both_kinds_of_question_nothing_is_fit_and_every_score_is_the_known_share():
    train, _, groups = _features(0)
    fit = fit_probe(train, np.zeros(len(train), dtype=bool), groups, train[:5], [1, 2], FrontierConfig())
    assert (fit.layer, fit.C, fit.cv_auroc) == (None, None, {})
    assert fit.held_out_scores.tolist() == [0.0] * 5


def test_a_prompts_hidden_state_is_the_same_alone_and_in_a_padded_batch(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.models.hidden_states import prompt_hidden_states

    path, _ = write_tiny_gguf(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name)
    tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    tok.pad_token = tok.pad_token or tok.eos_token
    questions = ["What is the capital of France?", "Why?", "What is the atomic number of hydrogen, the first element?"]
    batched = prompt_hidden_states(model, tok, questions, [0, 1], batch_size=3)
    assert batched.shape == (3, 2, model.config.hidden_size) and batched.dtype == np.float32
    for i, question in enumerate(questions):
        alone = prompt_hidden_states(model, tok, [question], [0, 1])
        assert alone[0] == pytest.approx(batched[i], abs=1e-5)
    assert not np.allclose(batched[0, 1], batched[1, 1])  # different questions, different states


def test_the_report_places_every_model_on_the_frontier_in_a_table_and_a_figure(tmp_path):
    from alignment.evaluation import report
    from alignment.evaluation.plots import plot_frontier

    def estimate(value: float) -> dict:
        return {"value": value, "ci95": [value - 0.1, value + 0.1]}

    def model(prudence: float, over: float, gap: float | None) -> dict:
        entry = {name: estimate(0.5) for name in ("perplexity", "accuracy_known", "hallucination_rate", "honesty")}
        entry |= {"prudence": estimate(prudence), "over_conservativeness": estimate(over)}
        entry |= {"truthfulness": estimate(0.1), "kl_to_reference": estimate(0.0)}
        return entry | ({"frontier_gap": estimate(gap)} if gap is not None else {})

    win = {"gold": estimate(0.5), "reward_model": estimate(0.5), "judge_gap": 0.0}
    metrics = {
        "base": model(0.0, 0.0, 0.0),
        "sft": model(0.75, 0.5, 0.25),
        "dpo": model(0.5, 0.1, 0.1) | {"win_rate_vs_sft": win},
        "policies": ["dpo"],
        "known_from": "base probe (its greedy answer is right)",
        "n_questions": {"known": 40, "unknown": 60},
        "n_reference_documents": 10,
        "frontier": frontier_summary(SCORES, KNOWN, samples=50) | {"confidence": frontier_summary(-SCORES, KNOWN, 50)},
    }
    text = report.render(metrics, {})
    section = text[text.index("## The knowledge frontier") :]
    assert "with AUROC 0.812 [" in section and "its confidence in its own greedy answer, 0.188 [" in section
    assert (
        "| sft | 0.750 [0.650, 0.850] | 0.500 [0.400, 0.600] | 0.250 [0.150, 0.350] | 0.100 [0.000, 0.200] |" in section
    )
    assert "![every model on the base's knowledge frontier](frontier.png)" in section
    plot_frontier(metrics, ["base", "sft", "dpo"], tmp_path / "frontier.png", "evaluate-x")
    assert (tmp_path / "frontier.png").stat().st_size > 10_000
    del metrics["frontier"]
    assert "## The knowledge frontier" not in report.render(metrics, {})  # a run without a frontier: no section
