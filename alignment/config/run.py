"""A whole run's config (every section, the policies it trains) and the retrain flow's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.base import MAX_SEED, Section
from alignment.config.compute import ComputeConfig, StoreConfig
from alignment.config.data import DataConfig
from alignment.config.evaluation import EvalConfig, JudgeConfig, ProbeConfig
from alignment.config.facts import FactsConfig
from alignment.config.frontier import FrontierConfig
from alignment.config.model import ModelConfig
from alignment.config.policies import POLICIES, POLICY_NAMES, policy
from alignment.config.reward import RewardSection
from alignment.config.sft import SFTSection
from alignment.config.world import WorldConfig


class _RunChecks(Section):
    """The checks a whole run's config makes across its sections."""

    @model_validator(mode="after")
    def _policies_and_their_data(self) -> _RunChecks:
        if len(set(self.policies)) != len(self.policies):
            raise PydanticCustomError(
                "duplicate_policy", "policies {policies} names a policy twice", {"policies": self.policies}
            )
        learns = {policy(p).learns for p in self.policies}
        probe = self.data.preference_source == "probe"
        # questions-learners train on them; prompt-learners (RLOO) gold-score their rollouts with them
        if self.data.preference_questions is not None and not (probe or learns & {"questions", "prompts"}):
            readers = [p.name for p in POLICIES if p.learns in ("questions", "prompts")]
            raise PydanticCustomError(
                "unused_questions",
                "data.preference_questions is given but nothing reads it: set data.preference_source to probe, or "
                "add {readers} to policies",
                {"readers": " or ".join(readers)},
            )
        if "questions" in learns and not self.data.needs_world() and self.data.preference_questions is None:
            raise PydanticCustomError(
                "missing_questions",
                "policies {policies} learn from questions with accepted answers: set data.preference_questions",
                {"policies": [p for p in self.policies if policy(p).learns == "questions"]},
            )
        if self.facts is not None:
            self._real_facts_checks()
        if (
            "dpo" in self.policies
            and self.dpo.stop_at_operating_point
            and (self.facts is None or self.facts.max_known_abstention is None)
        ):
            raise PydanticCustomError(
                "stop_without_operating_point",
                "dpo.stop_at_operating_point stops DPO where facts.max_known_abstention's rule puts the model on the "
                "preference questions: set facts.max_known_abstention (a real-facts run), or turn the stop off",
                {},
            )
        if self.data.feedback is not None and "feedback" not in learns:
            readers = [p.name for p in POLICIES if p.learns == "feedback"]
            raise PydanticCustomError(
                "unused_feedback",
                "data.feedback is given but no listed policy learns from unpaired feedback: add {readers} to policies",
                {"readers": " or ".join(readers)},
            )
        return self

    def _real_facts_checks(self) -> None:
        """A real-facts run probes a given model and builds all its data from the facts: nothing else may say
        otherwise (never silently ignored)."""
        if self.model.name_or_path is None:
            raise PydanticCustomError(
                "facts_model",
                "facts: the real-facts questions probe a given pretrained model: set model.name_or_path (e.g. "
                "configs/real-facts.yaml's SmolLM2)",
                {},
            )
        sources = ("sft", "preferences", "eval_questions", "preference_questions", "reference_text")
        given = [k for k in sources if getattr(self.data, k) is not None]
        if given:
            raise PydanticCustomError(
                "facts_data",
                "facts: the real-facts run builds its own data, yet data.{keys} is given: remove it, or remove facts",
                {"keys": ", data.".join(given)},
            )
        if self.data.preference_source != "probe":
            raise PydanticCustomError(
                "facts_pairs",
                "facts: the real-facts pairs are built by probing the SFT model: set data.preference_source: probe",
                {},
            )


def _fields() -> dict[str, Any]:
    """RunConfig's fields, in the order the docs and the Prefect UI form show them: one section per policy."""
    fields: dict[str, Any] = {
        "seed": (int, Field(0, ge=0, le=MAX_SEED, description="Training seed for every stage.")),
        "world": (WorldConfig, Field(WorldConfig(), description="The synthetic world (the offline default data).")),
        "facts": (
            FactsConfig | None,
            Field(None, description="Real-facts questions (countries, elements) in place of the world's; None: none."),
        ),
        "data": (DataConfig, Field(DataConfig(), description="User data files in place of the world's.")),
        "model": (ModelConfig, Field(ModelConfig(), description="The base model.")),
        "sft": (SFTSection, Field(SFTSection(), description="Supervised finetuning (TRL SFTConfig names).")),
        "reward": (RewardSection, Field(RewardSection(), description="Reward model (TRL RewardConfig names).")),
    }
    fields |= {p.name: (p.section, Field(p.section(), description=p.description)) for p in POLICIES}
    fields["policies"] = (
        list[Literal[POLICY_NAMES]],
        Field(
            ["dpo"],
            min_length=1,
            description="The policies trained from the SFT model and evaluated side by side (any of "
            f"{', '.join(POLICY_NAMES)}); the first is the one the retrain flow promotes and the export merges.",
        ),
    )
    fields |= {
        "eval": (EvalConfig, Field(EvalConfig(), description="Evaluation on held-out data.")),
        "judge": (
            JudgeConfig,
            Field(JudgeConfig(), description="How answers are judged against the accepted answers."),
        ),
        "probe": (ProbeConfig, Field(ProbeConfig(), description="Knowledge probe of the SFT model.")),
        "frontier": (
            FrontierConfig,
            Field(
                FrontierConfig(), description="The P(IK) probe that draws the base's knowledge frontier (real facts)."
            ),
        ),
        "compute": (ComputeConfig, Field(ComputeConfig(), description="Device, precision, checkpoints.")),
        "store": (StoreConfig, Field(StoreConfig(), description="Artifact store.")),
    }
    return fields


RunConfig = create_model("RunConfig", __base__=_RunChecks, __module__=__name__, **_fields())
RunConfig.__doc__ = "A whole pipeline run: every section, and the policies it trains (``alignment.config.policies``)."


class PromotionGates(Section):
    """What a challenger must show against the promoted policy (the champion) to replace it."""

    min_gold_win_rate: float = Field(
        0.5, ge=0, le=1, description="Gold-judge win-rate of the challenger vs the champion (ties 0.5) at least this."
    )
    max_prudence_drop: float = Field(
        0.0, ge=0, le=1, description="Prudence (abstention on unknown questions) may fall by at most this."
    )
    max_accuracy_drop: float = Field(
        0.05, ge=0, le=1, description="Accuracy on known questions may fall by at most this."
    )


class RetrainConfig(Section):
    """Champion/challenger retraining on the data files that land in ``data_dir``."""

    data_dir: Path = Field(
        Path("data/incoming"),
        description="Where new data lands: demonstrations/*.jsonl and preferences/*.jsonl are appended to the "
        "run's own files. Use an absolute path the worker can read.",
    )
    name: str = Field(
        "policy",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Name of the promoted pointer (<store>/promoted/<name>.json); one champion per name.",
    )
    gates: PromotionGates = Field(PromotionGates(), description="What the challenger must show to be promoted.")
