"""The policy registry: every preference method declared once.

A policy is trained from the SFT model and evaluated beside it. Its row names the config section (a field of
``RunConfig`` of the same name), the stage function (``"module:function"``, imported only when it runs), the
graph values it takes besides ``base`` and ``sft``, and the data it learns from. The run config's ``policies``
type, the stage graph, evaluation, report, export, the per-stage deployments, retrain, ablation and bench all
read this table: adding a method is its module under ``alignment/methods/``, its section, and one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alignment.config.base import Section
from alignment.config.dpo import DPOSection
from alignment.config.grpo import GRPOSection
from alignment.config.kto import KTOSection
from alignment.config.rloo import RLOOSection

Learns = Literal["pairs", "feedback", "prompts", "questions"]


@dataclass(frozen=True)
class Policy:
    """One preference method.

    ``learns``: what it trains on: ``pairs`` (chosen/rejected), ``feedback`` (unpaired completions with a
    thumbs-up/down label; derived from the pairs unless ``data.feedback`` names a file), ``prompts`` (it samples
    its own answers and a reward model scores them) or ``questions`` (it samples its own answers and the gold
    judge scores them against the questions' accepted answers: a verifiable reward). ``inputs``: graph values it
    takes besides ``preferences`` (the run's preference data: pairs, feedback, prompts, questions), ``base`` and
    ``sft``; one ending in ``?`` is used when its stage runs. ``online``: trained on its own samples (it counts
    its own tokens in the bench). ``trainer``: the TRL trainer class it wraps."""

    name: str
    section: type[Section]
    build: str
    learns: Learns
    inputs: tuple[str, ...]
    trainer: str
    description: str
    online: bool = False


POLICIES: tuple[Policy, ...] = (
    Policy(
        "dpo",
        DPOSection,
        "alignment.methods.dpo:dpo_stage",
        "pairs",
        ("reference?",),
        "trl.DPOTrainer",
        "DPO (TRL DPOConfig names): offline, from the preference pairs.",
    ),
    Policy(
        "rloo",
        RLOOSection,
        "alignment.methods.rloo:rloo_stage",
        "prompts",
        ("reward",),
        "trl.RLOOTrainer",
        "Online RLHF against the reward model (TRL RLOOConfig names): samples answers to the preference prompts.",
        online=True,
    ),
    Policy(
        "kto",
        KTOSection,
        "alignment.methods.kto:kto_stage",
        "feedback",
        (),
        "trl.KTOTrainer",
        "KTO (TRL KTOConfig names): offline, from unpaired thumbs-up/down feedback.",
    ),
    Policy(
        "grpo",
        GRPOSection,
        "alignment.methods.grpo:grpo_stage",
        "questions",
        (),
        "trl.GRPOTrainer",
        "GRPO with a verifiable reward (TRL GRPOConfig names): samples answers to the preference-role questions, "
        "scored by the gold judge (correct +1, I don't know 0, wrong -1).",
        online=True,
    ),
)
POLICY_NAMES: tuple[str, ...] = tuple(p.name for p in POLICIES)


def policy(name: str) -> Policy:
    """The registry row of a policy; a clear error naming the known ones."""
    for row in POLICIES:
        if row.name == name:
            return row
    raise KeyError(f"no policy {name!r}: the policies are {', '.join(POLICY_NAMES)}")
