"""The reward model: TRL's RewardTrainer on preference pairs, LoRA plus a trained score head, each pair's shared
prefix computed once (``alignment.models.shared_prefix``).

A share of the prompts (with all their pairs) is held out; RewardTrainer's own evaluation on them gives
the held-out pairwise accuracy.
"""

from __future__ import annotations

import json
import random

from alignment.config.reward import RewardSection
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact
from alignment.data.run_data import RunData
from alignment.models.refs import BaseRef, base_ref


def split_pairs(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded split of the pairs by prompt (no prompt in both), for held-out pairwise accuracy."""

    def key(row: dict) -> str:  # pairs with an implicit prompt are their own group
        return json.dumps(row.get("prompt", row["chosen"]), sort_keys=True)

    prompts = sorted({key(r) for r in rows})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: round(len(prompts) * eval_fraction)])
    return [r for r in rows if key(r) not in held], [r for r in rows if key(r) in held]


def train_reward(cfg: RewardSection, base: BaseRef, preferences: list[dict], run: TrainingRun) -> dict:
    """Train the reward model (LoRA + score head) from the base; saves ``run.out_dir / "adapter"``."""
    from datasets import Dataset
    from trl import RewardConfig

    from alignment.models.modeling import fit, load_tokenizer, lora_config, reward_backbone, trainer_args
    from alignment.models.shared_prefix import SharedPrefixRewardTrainer

    train_rows, held_rows = split_pairs(preferences, cfg.eval_fraction, run.seed)
    trainer = SharedPrefixRewardTrainer(
        model=reward_backbone(base).to(run.device.name),
        args=trainer_args(RewardConfig, cfg, run, eval_strategy="no", per_device_eval_batch_size=64),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(held_rows) if held_rows else None,
        processing_class=load_tokenizer(base),
        peft_config=lora_config(cfg.lora, "SEQ_CLS", modules_to_save=["score"]),
    )
    kept = len(trainer.train_dataset)  # RewardTrainer silently drops pairs longer than max_length
    if kept == 0:
        raise ValueError(
            f"every one of {len(train_rows)} training pairs is longer than reward.max_length={cfg.max_length}"
        )
    if kept < len(train_rows):
        run.report(
            f"{len(train_rows) - kept} of {len(train_rows)} pairs dropped: longer than max_length {cfg.max_length}"
        )
    metrics = fit(trainer, run, cfg) | {
        "train_pairs": kept,
        "train_pairs_dropped": len(train_rows) - kept,
        "shared_prefix": trainer.packs_pairs,
    }
    if held_rows:
        held_out = trainer.evaluate()
        metrics["heldout_pairs"] = len(trainer.eval_dataset)
        metrics["heldout_pairwise_accuracy"] = held_out["eval_accuracy"]
        metrics["heldout_margin"] = held_out["eval_margin"]
    return metrics


def reward_stage(cfg: RewardSection, ctx: StageContext, preferences: RunData, base: Artifact) -> Artifact:
    """Reward model (LoRA + score head) on the preference pairs."""
    inputs = {"base": base.id, "preferences": preferences.id("preferences")}

    def fit(run: TrainingRun) -> dict:
        return train_reward(cfg, base_ref(base, ctx.cfg.model), preferences.rows("preferences"), run)

    return ctx.train("reward", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": [base.id]})
