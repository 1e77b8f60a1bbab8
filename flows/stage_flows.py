"""One stage alone, as its own flow (deployments `alignment-sft/sft`, `alignment-reward/reward`,
`alignment-dpo/dpo`, `alignment-evaluate/evaluate`): inputs are artifact ids or "latest" (the newest
artifact of that stage in the store); upstream artifacts not given are read from the given artifacts'
manifests, and the rest of what the stage needs is planned from the stage graph. Each returns the id of
the artifact it built (or reused)."""

from __future__ import annotations

from alignment import environment

environment.apply()  # a worker loads this file by path, without flows/__init__: defaults before any import

from typing import Annotated

from prefect import flow
from pydantic import Field

from alignment import graph
from alignment.config import RunConfig
from alignment.store import ArtifactStore
from flows.pipeline import run_stages


def _ref(stage: str) -> type[str]:
    return Annotated[
        str,
        Field(
            pattern=rf"^(latest|{stage}-[0-9a-f]{{16}})$",
            description=f"A {stage} artifact id (e.g. {stage}-0123456789abcdef) or 'latest': the newest {stage} "
            "artifact in the store.",
        ),
    ]


BaseRef, SFTRef, RewardRef, DPORef = _ref("base"), _ref("sft"), _ref("reward"), _ref("dpo")


def run_target(cfg: RunConfig, target: str, refs: dict[str, str], publish: bool = False) -> str:
    """Build ``target`` from the artifacts ``refs`` names (ids or "latest"); returns its artifact id."""
    given = graph.resolve_given(ArtifactStore(cfg.store.root), cfg, target, refs)
    values = run_stages(cfg, ("report",) if publish else (target,), given)
    return values[target].id


@flow(name="alignment-sft")
def sft_flow(cfg: RunConfig = RunConfig(), base: BaseRef = "latest") -> str:  # noqa: B008
    """LoRA SFT of a base model on the run's demonstrations."""
    return run_target(cfg, "sft", {"base": base})


@flow(name="alignment-reward")
def reward_flow(cfg: RunConfig = RunConfig(), base: BaseRef = "latest", sft: SFTRef = "latest") -> str:  # noqa: B008
    """Reward model on the run's preference pairs. With ``data.preference_source: probe`` the pairs are
    built by probing ``sft`` (and the base is the SFT model's); otherwise ``sft`` is not used."""
    return run_target(cfg, "reward", {"base": base, "sft": sft})


@flow(name="alignment-dpo")
def dpo_flow(cfg: RunConfig = RunConfig(), sft: SFTRef = "latest") -> str:  # noqa: B008
    """DPO on an SFT model (its base is read from the SFT artifact) with the run's preference pairs."""
    return run_target(cfg, "dpo", {"sft": sft})


@flow(name="alignment-evaluate")
def evaluate_flow(cfg: RunConfig = RunConfig(), dpo: DPORef = "latest", reward: RewardRef = "latest") -> str:  # noqa: B008
    """Evaluate a DPO policy (with its SFT model and base, read from its manifest), judged by ``reward`` (a
    reward model on the same base), and publish the report and lineage; returns the evaluation's id."""
    return run_target(cfg, "evaluate", {"dpo": dpo, "reward": reward}, publish=True)


@flow(name="alignment-rloo")
def rloo_flow(cfg: RunConfig = RunConfig(), sft: SFTRef = "latest", reward: RewardRef = "latest") -> str:  # noqa: B008
    """Online RLHF (RLOO) on an SFT model against ``reward``, a reward model on the same base."""
    if "rloo" not in cfg.policies:
        cfg = cfg.model_copy(update={"policies": [*cfg.policies, "rloo"]})
    return run_target(cfg, "rloo", {"sft": sft, "reward": reward})
