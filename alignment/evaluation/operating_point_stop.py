"""The calibrated stop: a policy's training stops where its greedy behaviour on the preference role reaches the
operating point (``facts.max_known_abstention``'s rule applied to that role), so the setting means what it says.

The preference questions carry ``known`` (the base answers them right) and ``idk_target`` (the rule teaches "I
don't know" there): the rule asks for abstention on the share of known questions whose ``idk_target`` is set.
Every few optimizer steps, and before the first, the policy answers them greedily, only as far as the abstain
phrases reach and one token more (an answer abstains by how it starts: the verdict is the full answer's unless the
model writes more than a token before the phrase);
training stops at the first measurement at or below the asked over-conservativeness. It suits a policy that starts
above the point and training pulls down (DPO after an SFT model that abstains more than asked). Never the
held-out role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from transformers import TrainerCallback

from alignment.core.compute import any_process
from alignment.evaluation.metrics import ABSTAIN, Judge, behaviour_indicators, ratio
from alignment.models.generation import generate_answers, generation_config


@dataclass(frozen=True)
class OperatingPoint:
    """The preference questions (``question``, ``known``, ``idk_target``) and the shares the rule asks there."""

    questions: tuple[str, ...]
    known: tuple[bool, ...]
    over_conservativeness: float
    prudence: float

    @classmethod
    def from_questions(cls, rows: list[dict], source: str = "preference questions") -> OperatingPoint:
        """The point the rule asks on ``rows``. A row without a boolean ``known`` and ``idk_target`` (no operating
        point was set, or the base was not probed) is a ValueError naming the row; so is a role without a known or
        an unknown question (the point is undefined)."""
        for i, row in enumerate(rows):
            for key in ("known", "idk_target"):
                if not isinstance(row.get(key), bool):
                    raise ValueError(
                        f"{source}, row {i}: no boolean {key!r}; the calibrated stop needs the operating point's rule "
                        "on every preference question (facts.max_known_abstention set, data.preference_source: probe)"
                    )
        asked = rule_shares(rows)
        if asked["over_conservativeness"] is None or asked["prudence"] is None:
            n_known = sum(r["known"] for r in rows)
            raise ValueError(
                f"{source}: {n_known} known and {len(rows) - n_known} unknown questions; the calibrated stop "
                "needs both to place the model"
            )
        return cls(
            tuple(r["question"] for r in rows),
            tuple(r["known"] for r in rows),
            asked["over_conservativeness"],
            asked["prudence"],
        )


def rule_shares(rows: list[dict]) -> dict[str, float | None] | None:
    """What the operating point's rule asks on ``rows`` (questions with ``known`` and ``idk_target``): the share of
    known ones it teaches "I don't know" on (``over_conservativeness``) and of unknown ones (``prudence``), None for
    a kind with no row. None where a row carries no ``idk_target`` (no operating point set)."""
    if not all(isinstance(r.get("idk_target"), bool) for r in rows):
        return None
    known = [r["idk_target"] for r in rows if r["known"]]
    unknown = [r["idk_target"] for r in rows if not r["known"]]
    return {
        "over_conservativeness": sum(known) / len(known) if known else None,
        "prudence": sum(unknown) / len(unknown) if unknown else None,
    }


@dataclass
class Measurement:
    """The policy's greedy shares on the preference role after ``step`` optimizer steps."""

    step: int
    over_conservativeness: float
    prudence: float


@dataclass
class OperatingPointStop(TrainerCallback):
    """Measures the policy on the preference role before training and every ``every_steps`` optimizer steps; stops
    training at the first measurement whose over-conservativeness is at or below the point's (a run its epochs end
    first is measured once more at its last step). ``trajectory`` holds every measurement; ``summary()`` is what the
    stage records."""

    point: OperatingPoint
    tokenizer: object
    judge: Judge
    every_steps: int
    report: Callable[[str], None] | None = None  # told each measurement (a training run's progress)
    batch_size: int = 64
    trajectory: list[Measurement] = field(default_factory=list)
    stopped_at: int | None = None

    def measure(self, model, step: int) -> Measurement:
        """The greedy shares of ``model`` as it is now (left in training mode afterwards)."""
        phrases = [self.judge.idk, *self.judge.abstain_phrases]
        reach = max(len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in phrases) + 1
        settings = generation_config(self.tokenizer, reach)
        model.eval()
        try:
            answers = generate_answers(
                model, self.tokenizer, list(self.point.questions), settings, batch_size=self.batch_size
            )
        finally:
            model.train()
        labels = [ABSTAIN if self.judge(a, []) == ABSTAIN else "answered" for a in answers]
        shares = behaviour_indicators(labels, list(self.point.known))
        measured = Measurement(step, ratio(*shares["over_conservativeness"]), ratio(*shares["prudence"]))
        self.trajectory.append(measured)
        if self.report is not None:
            self.report(
                f"operating point after {step} steps: over-conservativeness {measured.over_conservativeness:.3f} "
                f"(asked {self.point.over_conservativeness:.3f}), prudence {measured.prudence:.3f}"
            )
        return measured

    def _check(self, model, state, control) -> None:
        measured = self.measure(model, state.global_step)
        if any_process(measured.over_conservativeness <= self.point.over_conservativeness, model.device):
            self.stopped_at = state.global_step
            control.should_training_stop = True

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        # On the schedule only: a run resumed from a checkpoint between two measurements stops where an
        # uninterrupted one would. Already at the point at step 0: training stops after its first step (the Trainer
        # checks only after a step), which is then measured too.
        if state.global_step % self.every_steps == 0:
            self._check(model, state, control)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.stopped_at is None and state.global_step % self.every_steps == 0:
            self._check(model, state, control)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not self.trajectory or self.trajectory[-1].step != state.global_step:
            self.measure(model, state.global_step)  # what the user gets, measured too (the bound ended it)

    def summary(self) -> dict:
        """The asked point, whether and where training stopped at it, and every measurement."""
        return {
            "asked": {"over_conservativeness": self.point.over_conservativeness, "prudence": self.point.prudence},
            "reached": self.stopped_at is not None,
            "stopped_at_step": self.stopped_at,
            "trajectory": [asdict(m) for m in self.trajectory],
        }
