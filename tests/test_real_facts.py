"""The real-facts run: the model as given is probed on every real-facts question, its knowledge decides the
demonstrations (its own right answer, else "I don't know") and which held-out questions count as known; the
evaluation and the report split by its knowledge categories and check the honesty bounds against it."""

import json
import math
from pathlib import Path

import pytest
from test_gguf import write_tiny_gguf

from alignment import graph
from alignment.config.base import ConfigError
from alignment.config.loading import load_config
from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore
from alignment.data.records import IDK, read_jsonl
from alignment.evaluation.frontier import with_knowledge
from alignment.evaluation.knowledge import (
    abstention_rule,
    abstention_threshold,
    demonstration,
    knowledge_summary,
    with_idk_target,
)
from alignment.evaluation.knowledge_report import category_section
from alignment.evaluation.metrics import Judge, label_shares
from alignment.evaluation.probe_pairs import preference_pairs
from alignment.evaluation.report import claims

CONTAINS = Judge(first_sentence=True, match="contains")
FRANCE = {"question": "What is the capital of France?", "answers": ["Paris"], "family": "capital"}
TOGO = {"question": "What is the capital of Togo?", "answers": ["Lomé", "Lome"], "family": "capital"}


def test_demonstrations_are_the_models_own_right_answers_or_i_dont_know():
    known = demonstration(
        with_knowledge(FRANCE, "The capital of France is Paris. It is known for the Eiffel Tower.", CONTAINS, -0.2)
    )
    assert known == {
        "prompt": FRANCE["question"],
        "completion": "The capital of France is Paris.",  # its own words, first sentence only
        "known": True,
        "family": "capital",
    }
    unknown = demonstration(with_knowledge(TOGO, "The capital of Togo is Lagos.", CONTAINS, -0.9))
    assert unknown["completion"] == IDK and unknown["known"] is False
    assert (
        demonstration(with_knowledge(TOGO, "The capital of Togo is Lome.", CONTAINS, -0.5))["known"] is True
    )  # folded


def test_known_is_the_base_greedy_answer_and_the_summary_counts_by_role_and_family():
    rows = {
        "sft": [with_knowledge(FRANCE, "Paris.", CONTAINS, -0.1), with_knowledge(TOGO, "Lagos.", CONTAINS, -0.3)],
        "pref": [with_knowledge(TOGO, "I don't know.", CONTAINS, -1.0)],
        "eval": [
            with_knowledge(FRANCE, "Paris.", CONTAINS, -0.2, "maybe_known"),
            with_knowledge(TOGO, "x", CONTAINS, -2.0, "unknown"),
        ],
    }
    assert [r["known"] for r in rows["sft"]] == [True, False] and rows["eval"][1]["category"] == "unknown"
    assert rows["sft"][0]["base_answer"] == "Paris."
    rows = {
        role: [r | {"pik": p} for r, p in zip(role_rows, (0.4, 0.6), strict=False)] for role, role_rows in rows.items()
    }
    summary = knowledge_summary(rows)
    assert summary["sft"] == {
        "questions": 2,
        "known": 1,
        "known_by_family": {"capital": "1/2"},
        "pik_auroc": 0.0,  # the probe scored the known question below the unknown one
        "confidence_auroc": 1.0,  # the known answer is the more confident one
        "idk_targets": 1,  # without a threshold every wrong answer is an "I don't know" target
    }
    assert summary["pref"]["confidence_auroc"] is None and summary["pref"]["pik_auroc"] is None  # nothing known
    assert summary["pref"]["known"] == 0


def test_probe_pairs_hold_the_models_own_words_as_the_judge_read_them():
    rows = [
        {
            "prompt": FRANCE["question"],
            "answers": ["Paris"],
            "greedy": "The capital of France is Paris. More text.",
            "samples": ["It is Lyon. Or not.", "Paris."],
            "probed_known": True,
        },
        {
            "prompt": TOGO["question"],
            "answers": ["Lomé"],
            "greedy": "The capital of Togo is Lagos. Lagos is big.",
            "samples": ["I don't know.", "The capital of Togo is Lagos."],
            "probed_known": False,
        },
    ]
    pairs = preference_pairs(rows, max_rejected=2, judge=CONTAINS)
    assert [(p["chosen"], p["rejected"], p["kind"]) for p in pairs] == [
        ("The capital of France is Paris.", IDK, "probe_known_correct>idk"),
        ("The capital of France is Paris.", "It is Lyon.", "probe_known_correct>own_wrong"),
        (IDK, "The capital of Togo is Lagos.", "probe_unknown_idk>own_wrong"),  # the same sentence once
    ]


def test_label_shares_per_category_have_exact_values():
    shares = label_shares(["correct", "idk", "wrong", "wrong"], samples=50)
    assert shares["questions"] == 4
    assert (shares["correct"]["value"], shares["idk"]["value"], shares["wrong"]["value"]) == (0.25, 0.25, 0.5)
    assert shares["wrong"]["ci95"][0] <= 0.5 <= shares["wrong"]["ci95"][1]


def _metrics(hallucination: float, accuracy: float, over: float) -> dict:
    def est(v: float, half: float = 0.05) -> dict:
        return {"value": v, "ci95": [v - half, v + half]}

    def model(h: float, a: float, o: float, ppl: float) -> dict:
        return {
            "perplexity": est(ppl),
            "accuracy_known": est(a),
            "over_conservativeness": est(o),
            "prudence": est(1 - h),
            "hallucination_rate": est(h),
            "by_category": {"highly_known": label_shares(["correct"] * 3 + ["idk"], samples=20)},
        }

    return {
        "base": model(1.0, 1.0, 0.0, 10.0),
        "sft": model(0.6, 0.95, 0.05, 12.0),
        "dpo": model(hallucination, accuracy, over, 13.0)
        | {"win_rate_vs_sft": {"gold": est(0.6), "reward_model": est(0.6)}},
        "policies": ["dpo"],
        "known_from": "base probe (its greedy answer is right)",
        "n_questions": {"known": 40, "unknown": 49},
        "n_reference_documents": 60,
    }


def test_the_report_checks_the_honesty_bounds_against_the_model_as_given():
    def verdicts(metrics: dict) -> dict[str, bool]:
        return {
            claim.split(" (")[0]: ok
            for claim, ok, _ in claims(metrics)
            if "instruct model" in claim or "over-" in claim
        }

    good = verdicts(_metrics(hallucination=0.4, accuracy=0.92, over=0.1))
    assert list(good.values()) == [True, True, True]
    assert list(verdicts(_metrics(hallucination=0.55, accuracy=0.92, over=0.1)).values()) == [False, True, True]
    assert list(verdicts(_metrics(hallucination=0.4, accuracy=0.85, over=0.2)).values()) == [True, False, False]
    lines = category_section(_metrics(0.4, 0.92, 0.1), ["base", "sft", "dpo"])
    assert "| highly known | 4 | 0.75 / 0.25 / 0.00 | 0.75 / 0.25 / 0.00 | 0.75 / 0.25 / 0.00 |" in lines


def test_a_real_facts_config_is_checked_before_any_work():
    facts = "facts={max_entities: 3}"
    with pytest.raises(ConfigError, match="facts: the real-facts questions probe a given pretrained model"):
        load_config(None, [facts, "data.preference_source=probe"])
    real = load_config("configs/real-facts.yaml")
    assert [s.name for s in graph.plan(real, ["report"])] == [
        *("world", "base", "frontier", "data", "sft", "preferences", "reward", "reference", "dpo", "rloo", "grpo"),
        "evaluate",  # no probe of the SFT model: the base's frontier says which held-out questions are known
        "report",
    ]
    assert graph.stages(real)["data"].build == "alignment.evaluation.knowledge:knowledge_stage"
    with pytest.raises(ConfigError, match=r"builds its own data, yet data.sft, data.reference_text is given"):
        load_config("configs/real-facts.yaml", ["data.sft=data/demonstrations.jsonl", "data.reference_text=x.txt"])
    with pytest.raises(ConfigError, match="set data.preference_source: probe"):
        load_config("configs/real-facts.yaml", ["data.preference_source=construction"])


def test_the_base_is_probed_and_the_data_is_model_aware_end_to_end(tmp_path):
    """A tiny llama GGUF as the model as given: it knows nothing, so every demonstration is "I don't know", every
    held-out question is unknown, and no held-out entity reaches training."""
    path, _ = write_tiny_gguf(tmp_path)
    cfg = load_config(
        "configs/real-facts.yaml",
        [
            f"model.name_or_path={tmp_path}",
            f"model.gguf_file={path.name}",
            f"store.root={tmp_path / 'runs'}",
            "facts={max_entities: 5, reference_documents: 5, max_known_abstention: 0.15}",
            "probe={samples: 2, max_new_tokens: 4}",
            "compute.device=cpu",
        ],
    )
    store = ArtifactStore(cfg.store.root)
    data = graph.run_local(StageContext(cfg, store, progress=lambda _: None), ("data",))["data"]
    demos = read_jsonl(data.sft.path)
    held_out = read_jsonl(data.questions.path)
    assert {d["completion"] for d in demos} == {IDK} and not any(d["known"] for d in demos)
    assert {q["category"] for q in held_out} == {"unknown"} and not any(q["known"] for q in held_out)
    assert all("base_answer" in q for q in read_jsonl(data.preference_questions.path))
    # what the pairs stage reads keeps the operating point's rule and the base's answer (it once dropped both, so
    # the threshold never reached the pairs); it knows nothing, so every score is below the threshold
    read = data.rows("preference_questions")
    assert read and all(q["idk_target"] is True and isinstance(q["base_answer"], str) for q in read)
    assert not {q["entity"] for q in held_out} & {q["entity"] for q in read_jsonl(data.preference_questions.path)}
    assert not {q["question"] for q in held_out} & {d["prompt"] for d in demos}
    assert [q["known"] for q in data.rows("questions")] == [False] * len(held_out)
    knowledge = store.load(Path(data.sft.path).parent.name)
    assert set(knowledge.manifest["inputs"]) == {"frontier"}
    frontier = store.load(knowledge.manifest["inputs"]["frontier"])
    assert set(frontier.manifest["inputs"]) == {"world", "base"}
    drawn = json.loads((frontier.path / "frontier.json").read_text())
    # it knows nothing: no probe to fit (no layer chosen), every score the known share (0), no AUROC to draw
    assert (drawn["layer"], drawn["auroc"]["value"], drawn["held_out_questions"]["known"]) == (None, None, 0)
    assert drawn["held_out_categories"] == {
        "highly_known": 0,
        "maybe_known": 0,
        "weakly_known": 0,
        "unknown": len(held_out),
    }
    assert {q["pik"] for q in held_out} == {0.0}
    probed = read_jsonl(knowledge.path / "sft_questions.jsonl")  # every SFT question, with the base's confidence
    assert len(probed) == len(demos) and all(
        math.isfinite(r["base_confidence"]) and r["base_confidence"] <= 0 for r in probed
    )


def _known(pik: float, known: bool, name: str = "x") -> dict:
    return {"question": name, "family": "capital", "pik": pik, "known": known, "base_answer": "A."}


def test_the_abstention_threshold_lets_at_most_the_given_share_of_known_questions_fall_below():
    rows = [_known(p, True) for p in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)]
    rows += [_known(0.1, False), _known(0.99, False)]
    # 10 known questions: 10% may fall below, so the threshold is the second lowest known score
    assert abstention_threshold(rows, 0.1) == 0.55
    assert abstention_threshold(rows, 0.0) == 0.5  # none below: the lowest known score
    assert abstention_threshold(rows, 0.25) == 0.6
    assert abstention_threshold(rows, 0.5) == 0.75
    assert abstention_threshold([_known(0.3, False)], 0.1) == math.inf  # nothing known: always abstain


def test_the_data_teaches_the_probes_rule_and_confidently_wrong_questions_teach_nothing():
    plain = [_known(0.9, True, "knows"), _known(0.2, False, "unsure"), _known(0.8, False, "sure"), _known(0.1, True)]
    rows = with_idk_target(plain, 0.5)
    assert [r["idk_target"] for r in rows] == [False, True, False, True]
    demos = [demonstration(r) for r in rows]
    assert demos[0]["completion"] == "A." and demos[1]["completion"] == IDK and demos[2] is None
    assert demos[3]["completion"] == IDK and demos[3]["known"] is True  # known, but below the threshold: given up
    # no threshold: R-Tuning's split, its own answer wherever it knows and "I don't know" wherever it does not
    assert with_idk_target(plain, None) == plain
    assert [d["completion"] for d in map(demonstration, plain)] == ["A.", IDK, IDK, "A."]
    probe_rows = [
        {"prompt": "sure", "answers": ["Lomé"], "greedy": "Lagos.", "probed_known": False, "idk_target": False},
        {"prompt": "unsure", "answers": ["Lomé"], "greedy": "Accra.", "probed_known": False, "idk_target": True},
        {"prompt": "knows", "answers": ["Lomé"], "greedy": "Lomé.", "probed_known": True, "idk_target": False},
        {
            "prompt": "let go",  # answered right, but below the threshold: no pair prefers its answer to IDK
            "answers": ["Lomé"],
            "greedy": "Lomé.",
            "samples": ["Accra."],
            "probed_known": True,
            "idk_target": True,
        },
    ]
    pairs = preference_pairs(probe_rows, judge=CONTAINS)
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("unsure", IDK, "Accra."),
        ("knows", "Lomé.", IDK),
        ("let go", "Lomé.", "Accra."),
    ]
    untargeted = [{k: v for k, v in r.items() if k != "idk_target"} for r in probe_rows]
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in preference_pairs(untargeted, judge=CONTAINS)] == [
        ("sure", IDK, "Lagos."),  # R-Tuning's pairs: wherever the probed model is wrong
        ("unsure", IDK, "Accra."),
        ("knows", "Lomé.", IDK),
        ("let go", "Lomé.", IDK),
        ("let go", "Lomé.", "Accra."),
    ]


def test_what_the_base_knew_and_the_sft_model_gave_up_is_preferred_to_i_dont_know():
    given_up = {
        "prompt": "Togo?",
        "answers": ["Lomé"],
        "greedy": "I don't know.",
        "samples": ["Accra. Or not."],
        "probed_known": False,  # the SFT model never answers it right
        "world_known": True,  # the model as given did
        "idk_target": False,  # above the operating point's threshold: not one to give up
        "base_answer": "The capital of Togo is Lomé. It lies on the coast.",
    }
    pairs = preference_pairs([given_up], judge=CONTAINS)
    assert [(p["chosen"], p["rejected"], p["kind"]) for p in pairs] == [
        ("The capital of Togo is Lomé.", IDK, "base_known>idk"),
        ("The capital of Togo is Lomé.", "Accra.", "base_known>own_wrong"),
    ]
    below = given_up | {"idk_target": True}  # below the threshold: a known question the setting lets go
    assert [p["kind"] for p in preference_pairs([below], judge=CONTAINS)] == ["probe_unknown_idk>own_wrong"]


def test_confidence_is_the_mean_log_probability_of_the_answer_up_to_its_end(tmp_path):
    import torch
    from transformers import GenerationConfig

    from alignment.models.generation import generate_scored

    class Fixed(torch.nn.Module):
        """Greedy over a fixed next-token table: answers 5, 6, EOS (id 2), then pads; probabilities known exactly."""

        device = torch.device("cpu")

        def generate(self, input_ids, attention_mask, generation_config, stopping_criteria):
            b, n = input_ids.shape
            new = torch.tensor([[5, 6, 2, 2]] * b)
            probs = [0.5, 0.25, 1.0, 0.9]
            scores = []
            for t, p in enumerate(probs):
                logits = torch.full((b, 8), -1e9)
                logits[:, new[0, t]] = math.log(p)
                logits[:, 7] = math.log(1 - p) if p < 1 else -1e9
                scores.append(logits)
            return type("Out", (), {"sequences": torch.cat([input_ids, new], 1), "scores": tuple(scores)})

    class Tok:
        pad_token_id, eos_token_id = 2, 2

        def apply_chat_template(self, conversation, tokenize, add_generation_prompt):
            return conversation[-1]["content"]

        def __call__(self, texts, **_):
            return {
                "input_ids": torch.ones(len(texts), 3, dtype=torch.long),
                "attention_mask": torch.ones(len(texts), 3),
            }

        def batch_decode(self, seqs, skip_special_tokens):
            return [" five six " for _ in seqs]

    settings = GenerationConfig(max_new_tokens=4, pad_token_id=2, eos_token_id=2, do_sample=False)
    [(text, conf)] = generate_scored(Fixed(), Tok(), ["q"], settings, confidence=True)
    assert text == "five six"
    assert conf == pytest.approx((math.log(0.5) + math.log(0.25) + math.log(1.0)) / 3)  # the pad after EOS not counted
    assert generate_scored(Fixed(), Tok(), ["q"], settings) == [("five six", None)]


def test_generation_can_stop_once_the_first_sentence_has_ended():
    import torch

    from alignment.models.generation import FirstSentenceEnded

    class Tok:
        texts = {1: "Paris", 2: ".", 3: " It", 4: "\n"}

        def batch_decode(self, seqs, skip_special_tokens):
            return ["".join(self.texts[int(i)] for i in row) for row in seqs]

    stop = FirstSentenceEnded(Tok(), prompt_length=1)
    ids = torch.tensor([[9, 1, 2, 2], [9, 1, 2, 3], [9, 1, 4, 3]])
    # "Paris..": not ended; "Paris. It": the next sentence began; "Paris\n It": a line break ends it
    assert stop(ids, None).tolist() == [False, True, True]


def test_stopping_at_the_first_sentence_needs_a_judge_that_reads_only_it():
    with pytest.raises(ConfigError, match="stop_at_first_sentence"):
        load_config("configs/real-facts.yaml", ["judge.stop_at_first_sentence=true", "judge.first_sentence=false"])
    assert load_config("configs/real-facts.yaml", ["judge.stop_at_first_sentence=true"]).judge.first_sentence


def test_the_abstention_rule_fit_on_one_role_is_scored_on_another():
    fit = [_known(p, True) for p in (0.9, 0.8, 0.7)] + [_known(0.1, False)]
    rows = [_known(0.75, True), _known(0.5, True), _known(0.4, False), _known(0.95, False)]
    # threshold 0.7 (none of 3 known may fall below at 10%): abstains on the 0.5 known and the 0.4 unknown
    assert abstention_rule(fit, rows, 0.1) == {
        "max_known_abstention": 0.1,
        "abstains_on_known": 0.5,
        "abstains_on_unknown": 0.5,
    }


def test_held_out_questions_keep_the_base_confidence_and_the_report_states_its_auroc(tmp_path):
    from alignment.data.sources import question_row
    from alignment.evaluation.knowledge_report import category_section

    row = question_row({"question": "q", "answers": ["a"], "known": True, "category": "unknown", "base_confidence": -1})
    assert row["base_confidence"] == -1.0
    assert "base_confidence" not in question_row({"question": "q", "answers": ["a"]})
    with pytest.raises(ValueError, match="base_confidence"):
        question_row({"question": "q", "answers": ["a"], "base_confidence": "high"})
    assert question_row({"question": "q", "answers": ["a"], "pik": 0.25})["pik"] == 0.25
    kept = question_row({"question": "q", "answers": ["a"], "idk_target": False, "base_answer": "The a."})
    assert (kept["idk_target"], kept["base_answer"]) == (False, "The a.")
    assert "idk_target" not in question_row({"question": "q", "answers": ["a"]})
    with pytest.raises(ValueError, match="idk_target"):
        question_row({"question": "q", "answers": ["a"], "idk_target": "no"})
    with pytest.raises(ValueError, match=r"'pik' must be a number in \[0, 1\]"):
        question_row({"question": "q", "answers": ["a"], "pik": 1.5})
    shares = {k: {"value": 0.5} for k in ("correct", "idk", "wrong")} | {"questions": 2}
    metrics = {"base": {"by_category": {"unknown": shares}}, "base_confidence_auroc": 0.7142}
    assert any("with probability 0.71 (AUROC" in line for line in category_section(metrics, ["base"]))
