"""The calibrated stop: DPO measured on the preference role while it trains, stopped where the operating point's rule
puts the model there (``dpo.stop_at_operating_point``)."""

import pytest
from transformers import TrainerControl, TrainerState

from alignment.config.base import ConfigError
from alignment.config.loading import load_config
from alignment.evaluation import operating_point_stop
from alignment.evaluation.metrics import Judge
from alignment.evaluation.operating_point_stop import OperatingPoint, OperatingPointStop

IDK = "I don't know."


def _rows():
    """Four known questions (the rule asks IDK on one) and two unknown ones (it asks IDK on both)."""
    known = [{"question": f"k{i}", "known": True, "idk_target": i == 0} for i in range(4)]
    unknown = [{"question": f"u{i}", "known": False, "idk_target": True} for i in range(2)]
    return known + unknown


def test_the_point_is_what_the_rule_asks_on_the_preference_questions():
    point = OperatingPoint.from_questions(_rows())
    assert (point.over_conservativeness, point.prudence) == (0.25, 1.0)
    assert point.questions == ("k0", "k1", "k2", "k3", "u0", "u1")
    assert point.known == (True,) * 4 + (False,) * 2


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (_rows()[:3] + [{"question": "k3", "known": True}], r"pref\.jsonl, row 3: no boolean 'idk_target'"),
        ([r | {"known": True} for r in _rows()], r"pref\.jsonl: 6 known and 0 unknown questions"),
    ],
)
def test_questions_without_the_rule_are_refused_naming_the_row(rows, message):
    with pytest.raises(ValueError, match=message):
        OperatingPoint.from_questions(rows, "pref.jsonl")


class _Tokenizer:
    pad_token_id, eos_token_id = 0, 1

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


class _Model:
    device = "cpu"

    def __init__(self):
        self.modes = []

    def eval(self):
        self.modes.append("eval")

    def train(self):
        self.modes.append("train")


def test_training_stops_at_the_first_measurement_at_or_below_the_asked_point(monkeypatch):
    """Measured before training and every 2 steps: abstaining on 3, then 2, then 1 of the 4 known questions; the
    point asks 1 of 4, so training stops at step 4, and the measurements between are skipped."""
    known_idk = iter([3, 2, 1])
    calls = []

    def answers(model, tok, questions, settings, batch_size):
        calls.append(settings.max_new_tokens)
        n = next(known_idk)
        return [IDK if i < n else "Paris" for i in range(4)] + [IDK, "I don't know, sorry"]

    monkeypatch.setattr(operating_point_stop, "generate_answers", answers)
    model, reports = _Model(), []
    stop = OperatingPointStop(OperatingPoint.from_questions(_rows()), _Tokenizer(), Judge(), 2, reports.append)
    state, control = TrainerState(), TrainerControl()
    stop.on_train_begin(None, state, control, model=model)
    for step in range(1, 6):
        state.global_step = step
        stop.on_step_end(None, state, control, model=model)
        if control.should_training_stop:
            break
    assert step == 4 and control.should_training_stop
    assert calls == [4, 4, 4]  # as far as "I don't know." reaches (3 words) and one more token
    assert model.modes == ["eval", "train"] * 3  # back in training mode after each measurement
    assert stop.summary() == {
        "asked": {"over_conservativeness": 0.25, "prudence": 1.0},
        "reached": True,
        "stopped_at_step": 4,
        "trajectory": [
            {"step": 0, "over_conservativeness": 0.75, "prudence": 1.0},
            {"step": 2, "over_conservativeness": 0.5, "prudence": 1.0},
            {"step": 4, "over_conservativeness": 0.25, "prudence": 1.0},
        ],
    }
    assert reports[-1] == "operating point after 4 steps: over-conservativeness 0.250 (asked 0.250), prudence 1.000"


def test_the_stop_needs_an_operating_point(tmp_path):
    with pytest.raises(ConfigError, match=r"stop_at_operating_point=true\): dpo\.stop_at_operating_point .* set facts"):
        load_config("configs/micro.yaml", [f"store.root={tmp_path}", "dpo.stop_at_operating_point=true"])


@pytest.mark.slow  # trains DPO on the micro model
def test_dpo_with_the_stop_trains_to_its_bound_or_stops_where_the_point_is_met(micro, tmp_path):
    """DPO's metrics record every measurement: a point the model never reaches (over-conservativeness below 0) lets
    it train every step, measured every 2 and at its end; a point it starts at (1.0) stops it after its first step.
    The short measurement decides abstaining exactly as the evaluation's full greedy answers do."""
    from alignment.core.context import StageContext, TrainingRun
    from alignment.core.store import ArtifactStore
    from alignment.evaluation.metrics import ABSTAIN, behaviour_indicators, ratio
    from alignment.graph import run_local
    from alignment.methods.dpo import train_dpo
    from alignment.models.generation import generate_answers, generation_config
    from alignment.models.modeling import load_causal_lm, load_tokenizer
    from alignment.models.refs import base_ref

    cfg = micro("dpo.per_device_train_batch_size=8", "dpo.operating_point_steps=2")
    ctx = StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda event: None)
    built = run_local(ctx, ("sft", "preferences"))
    base, sft = base_ref(built["base"], cfg.model), built["sft"].path / "adapter"
    questions = [q["question"] for q in built["data"].rows("questions")]
    known = tuple(i % 2 == 0 for i in range(len(questions)))
    pairs = built["preferences"].rows("preferences")
    steps = -(-len(pairs) // 8)
    assert steps % 2 == 1  # an odd count: the last step is measured past the every-2 schedule

    def dpo(over_conservativeness, out):
        point = OperatingPoint(tuple(questions), known, over_conservativeness, 1.0)
        run = TrainingRun(tmp_path / out, ctx.device(), cfg.seed, lambda event: None, "dpo")
        (tmp_path / out).mkdir()
        return train_dpo(cfg.dpo, base, [sft], pairs, run, stop=(point, Judge()))

    never = dpo(-1.0, "never")
    assert never["steps"] == steps and never["operating_point"]["reached"] is False
    measured = [*range(0, steps, 2), steps]  # and its last step
    assert [m["step"] for m in never["operating_point"]["trajectory"]] == measured

    at_once = dpo(1.0, "at-once")
    assert at_once["steps"] == 1 and at_once["operating_point"]["stopped_at_step"] == 0
    first = at_once["operating_point"]["trajectory"]
    assert [m["step"] for m in first] == [0, 1]  # the one step the Trainer takes before it stops, measured too
    assert first[0] == never["operating_point"]["trajectory"][0]  # the SFT model, measured the same twice

    tok = load_tokenizer(base)
    full = generate_answers(load_causal_lm(base, [sft], "cpu"), tok, questions, generation_config(tok, 24))
    shares = behaviour_indicators([ABSTAIN if Judge()(a, []) == ABSTAIN else "-" for a in full], known)
    assert first[0]["over_conservativeness"] == ratio(*shares["over_conservativeness"])
    assert first[0]["prudence"] == ratio(*shares["prudence"])
