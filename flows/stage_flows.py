"""One stage alone, as its own flow (deployments `alignment-sft/sft`, `alignment-reward/reward`,
`alignment-dpo/dpo`, `alignment-evaluate/evaluate`): inputs are artifact ids or "latest" (the newest
artifact of that stage in the store); upstream inputs not given are read from the given artifact's
manifest. Each returns the id of the artifact it built (or reused)."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from alignment import stages
from alignment.config import RunConfig
from alignment.store import Artifact, ArtifactStore
from flows.pipeline import (
    dpo_task,
    evaluate_task,
    pairs_task,
    probe_task,
    reward_task,
    sft_task,
    validate_task,
    world_task,
)


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


def _upstream(store: ArtifactStore, art: Artifact, name: str) -> Artifact:
    return store.load(art.manifest["inputs"][name])


def _data(cfg: RunConfig, base: Artifact) -> stages.DataFiles:
    world = world_task(cfg)
    stages.check_same_world(base, world)
    return validate_task(cfg, world)


@flow(name="alignment-sft", log_prints=True)
def sft_flow(cfg: RunConfig = RunConfig(), base: BaseRef = "latest") -> str:  # noqa: B008
    """LoRA SFT of a base model on the run's demonstrations."""
    base_art = ArtifactStore(cfg.store.root).resolve(base, "base")
    return sft_task(cfg, base_art, _data(cfg, base_art)).id


@flow(name="alignment-reward", log_prints=True)
def reward_flow(cfg: RunConfig = RunConfig(), base: BaseRef = "latest", sft: SFTRef = "latest") -> str:  # noqa: B008
    """Reward model on the run's preference pairs. With ``data.preference_source: probe`` the pairs are
    built by probing ``sft`` (and the base is the SFT model's)."""
    store = ArtifactStore(cfg.store.root)
    if cfg.data.preference_source == "probe":
        sft_art = store.resolve(sft, "sft")
        base_art = _upstream(store, sft_art, "base")
        files = pairs_task(cfg, base_art, sft_art, _data(cfg, base_art))
    else:
        base_art = store.resolve(base, "base")
        files = _data(cfg, base_art)
    return reward_task(cfg, base_art, files).id


@flow(name="alignment-dpo", log_prints=True)
def dpo_flow(cfg: RunConfig = RunConfig(), sft: SFTRef = "latest") -> str:  # noqa: B008
    """DPO on an SFT model (its base is read from the SFT artifact) with the run's preference pairs."""
    store = ArtifactStore(cfg.store.root)
    sft_art = store.resolve(sft, "sft")
    base_art = _upstream(store, sft_art, "base")
    files = _data(cfg, base_art)
    if cfg.data.preference_source == "probe":
        files = pairs_task(cfg, base_art, sft_art, files)
    return dpo_task(cfg, base_art, sft_art, files).id


@flow(name="alignment-evaluate", log_prints=True)
def evaluate_flow(cfg: RunConfig = RunConfig(), dpo: DPORef = "latest", reward: RewardRef = "latest") -> str:  # noqa: B008
    """Evaluate a DPO policy (with its SFT model and base, read from its manifest) and publish the report
    and lineage; ``reward`` is the reward model that judges it."""
    store = ArtifactStore(cfg.store.root)
    dpo_art = store.resolve(dpo, "dpo")
    reward_art = store.resolve(reward, "reward")
    sft_art, base_art = _upstream(store, dpo_art, "sft"), _upstream(store, dpo_art, "base")
    if reward_art.manifest["inputs"]["base"] != base_art.id:
        raise ValueError(
            f"reward model {reward_art.id} is on base {reward_art.manifest['inputs']['base']}, but policy "
            f"{dpo_art.id} is on base {base_art.id}: pick a reward model trained on the same base"
        )
    files = _data(cfg, base_art)
    probe = probe_task(cfg, base_art, sft_art, files)
    return evaluate_task(cfg, base_art, sft_art, dpo_art, reward_art, files, probe).id
