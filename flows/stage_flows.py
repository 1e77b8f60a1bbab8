"""One stage alone, as its own flow (deployments `alignment-sft/sft`, `alignment-reward/reward`, one per policy of
the registry -- `alignment-dpo/dpo`, `alignment-rloo/rloo`, `alignment-kto/kto` -- and `alignment-evaluate/evaluate`):
inputs are artifact ids or "latest" (the newest artifact of that stage in the store); upstream artifacts not given
are read from the given artifacts' manifests, and the rest of what the stage needs is planned from the stage graph.
Each returns the id of the artifact it built (or reused)."""

from __future__ import annotations

from alignment.core import environment

environment.apply()  # a worker loads this file by path, without flows/__init__: defaults before any import

from typing import Annotated

from prefect import Flow, flow
from pydantic import Field

from alignment import graph
from alignment.config.policies import POLICIES, POLICY_NAMES, Policy
from alignment.config.run import RunConfig
from alignment.core.allowed_paths import confine
from alignment.core.store import ArtifactStore, artifact_id_pattern, stage_of
from flows.pipeline import run_stages


def _ref(stages: tuple[str, ...], description: str) -> type[str]:
    """A flow parameter naming an artifact of one of ``stages``: its id or "latest" (the form checks the pattern)."""
    return Annotated[str, Field(pattern=f"^(latest|{artifact_id_pattern(*stages)})$", description=description)]


def _stage_ref(stage: str) -> type[str]:
    return _ref(
        (stage,),
        f"A {stage} artifact id (e.g. {stage}-0123456789abcdef) or 'latest': the newest {stage} artifact in the store.",
    )


BaseRef, SFTRef, RewardRef = _stage_ref("base"), _stage_ref("sft"), _stage_ref("reward")
PolicyRef = _ref(
    POLICY_NAMES,
    "A policy artifact id (any of " + ", ".join(POLICY_NAMES) + ", e.g. dpo-0123456789abcdef) or "
    "'latest': the newest artifact of the config's first policy.",
)


def run_target(cfg: RunConfig, target: str, refs: dict[str, str], publish: bool = False) -> str:
    """Build ``target`` from the artifacts ``refs`` names (ids or "latest"); returns its artifact id."""
    confine(cfg)  # before the store is read to resolve the refs
    given = graph.resolve_given(ArtifactStore(cfg.store.root), cfg, target, refs)
    values = run_stages(cfg, ("report",) if publish else (target,), given)
    return values[target].id


def policy_of(cfg: RunConfig, ref: str) -> str:
    """The policy an artifact ref names: its id's prefix, or the config's first policy for "latest"."""
    return cfg.policies[0] if ref == "latest" else stage_of(ref)


def listing(cfg: RunConfig, name: str) -> RunConfig:
    """``cfg`` with the policy ``name`` among its policies (a policy's own flow trains it even if not listed)."""
    return cfg if name in cfg.policies else cfg.model_copy(update={"policies": [*cfg.policies, name]})


@flow(name="alignment-sft")
def sft_flow(cfg: RunConfig = RunConfig(), base: BaseRef = "latest") -> str:  # noqa: B008
    """LoRA SFT of a base model on the run's demonstrations."""
    return run_target(cfg, "sft", {"base": base})


@flow(name="alignment-reward")
def reward_flow(cfg: RunConfig = RunConfig(), base: BaseRef = "latest", sft: SFTRef = "latest") -> str:  # noqa: B008
    """Reward model on the run's preference pairs. With ``data.preference_source: probe`` the pairs are
    built by probing ``sft`` (and the base is the SFT model's); otherwise ``sft`` is not used."""
    return run_target(cfg, "reward", {"base": base, "sft": sft})


def policy_flow(policy: Policy) -> Flow:
    """The flow that trains one policy of the registry on an SFT model (its base is read from the SFT artifact),
    and on a reward model on the same base where the policy learns against one."""
    if "reward" in policy.inputs:

        def train(cfg: RunConfig = RunConfig(), sft: SFTRef = "latest", reward: RewardRef = "latest") -> str:  # noqa: B008
            return run_target(listing(cfg, policy.name), policy.name, {"sft": sft, "reward": reward})

    else:

        def train(cfg: RunConfig = RunConfig(), sft: SFTRef = "latest") -> str:  # noqa: B008
            return run_target(listing(cfg, policy.name), policy.name, {"sft": sft})

    train.__name__ = train.__qualname__ = f"{policy.name}_flow"
    train.__doc__ = f"{policy.description} Trained on an SFT model (artifact id or 'latest')."
    return flow(name=f"alignment-{policy.name}")(train)


for _policy in POLICIES:  # dpo_flow, rloo_flow, kto_flow: the deployments' entry points
    globals()[f"{_policy.name}_flow"] = policy_flow(_policy)


@flow(name="alignment-evaluate")
def evaluate_flow(cfg: RunConfig = RunConfig(), policy: PolicyRef = "latest", reward: RewardRef = "latest") -> str:  # noqa: B008
    """Evaluate a policy (any of the registry's; with its SFT model and base, read from its manifest), judged by
    ``reward`` (a reward model on the same base), and publish the report and lineage; returns the evaluation's id."""
    name = policy_of(cfg, policy)
    return run_target(cfg.model_copy(update={"policies": [name]}), "evaluate", {name: policy, "reward": reward}, True)
