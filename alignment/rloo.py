"""Online RLHF: TRL's RLOOTrainer trains a LoRA policy from the SFT model against our trained reward model.

For each preference prompt it samples ``num_generations`` answers, scores them with the reward model (its
LoRA and score head merged), and uses the leave-one-out mean of the other answers' rewards as baseline; a
KL penalty (``beta``) to the SFT model, which is the same network with the adapter disabled, keeps it close.
TRL 1.16 has no PPO; RLOO and GRPO are its online methods.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from alignment.config import RLOOSection
from alignment.context import StageContext, TrainingRun
from alignment.model_refs import BaseRef, base_ref
from alignment.run_data import RunData
from alignment.store import Artifact


def unique_prompts(pairs: list[dict]) -> list[dict]:
    """The distinct prompts of preference pairs, in first-seen order, as TRL prompt rows."""
    seen: dict[str, dict] = {}
    for pair in pairs:
        if "prompt" not in pair:
            raise ValueError("RLOO samples answers to prompts: preference pairs with an implicit prompt have none")
        seen.setdefault(json.dumps(pair["prompt"], sort_keys=True), {"prompt": pair["prompt"]})
    return list(seen.values())


def train_rloo(
    cfg: RLOOSection, base: BaseRef, sft_adapters: Sequence[Path], reward_adapter: Path, prompts: list[dict], run
) -> dict:
    """Train an RLOO LoRA adapter on the SFT model (the base with ``sft_adapters`` merged in) against the reward
    model (the base with ``reward_adapter``); saves ``run.out_dir / "adapter"``."""
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    from alignment.modeling import fit, load_causal_lm, load_reward_model, load_tokenizer, lora_config, trainer_args

    tok = load_tokenizer(base)
    trainer = RLOOTrainer(
        model=load_causal_lm(base, sft_adapters, run.device.name),
        reward_funcs=load_reward_model(base, reward_adapter, run.device.name),
        args=trainer_args(RLOOConfig, cfg, run),
        train_dataset=Dataset.from_list(prompts),
        processing_class=tok,
        reward_processing_classes=tok,
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),
    )
    result, resumed_from = fit(trainer, run)
    trainer.model.save_pretrained(run.out_dir / "adapter")
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    metrics = {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "resumed_from_step": resumed_from,
        "prompts": len(prompts),
    }
    if logs:
        metrics["first_reward"], metrics["final_reward"] = logs[0]["reward"], logs[-1]["reward"]
        metrics["final_kl"] = logs[-1].get("kl")
    return metrics


def rloo_stage(
    cfg: RLOOSection, ctx: StageContext, preferences: RunData, base: Artifact, sft: Artifact, *, reward: Artifact
) -> Artifact:
    """RLOO LoRA on the SFT model against the reward model, on the preference prompts."""
    inputs = {"base": base.id, "sft": sft.id, "reward": reward.id, "preferences": preferences.id("preferences")}

    def fit(run: TrainingRun) -> dict:
        prompts = unique_prompts(preferences.rows("preferences"))
        model = base_ref(base, ctx.cfg.model)
        return train_rloo(cfg, model, [sft.path / "adapter"], reward.path / "adapter", prompts, run)

    return ctx.train("rloo", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": [base.id, sft.id]})
