"""Direct preference optimisation: TRL's DPOTrainer with a LoRA adapter on the SFT model.

The reference model is the same network with the adapter disabled (no second copy in memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alignment.config import DPOSection
from alignment.context import StageContext, TrainingRun
from alignment.model_refs import BaseRef, base_ref
from alignment.run_data import RunData
from alignment.store import Artifact


def train_dpo(
    cfg: DPOSection, base: BaseRef, sft_adapters: Sequence[Path], preferences: list[dict], run: TrainingRun
) -> dict:
    """Train a DPO LoRA adapter on the SFT model (the base with ``sft_adapters`` merged in); saves
    ``run.out_dir / "adapter"``."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from alignment.modeling import fit, load_causal_lm, load_tokenizer, lora_config, trainer_args

    trainer = DPOTrainer(
        model=load_causal_lm(base, sft_adapters, device=run.device.name),
        ref_model=None,
        args=trainer_args(DPOConfig, cfg, run),
        train_dataset=Dataset.from_list(preferences),
        processing_class=load_tokenizer(base),
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),
    )
    metrics = fit(trainer, run) | {"pairs": len(preferences)}
    logs = [entry for entry in trainer.state.log_history if "rewards/accuracies" in entry]
    if logs:
        metrics["final_reward_accuracy"] = logs[-1]["rewards/accuracies"]
        metrics["final_reward_margin"] = logs[-1].get("rewards/margins")
    return metrics


def dpo_stage(cfg: DPOSection, ctx: StageContext, preferences: RunData, base: Artifact, sft: Artifact) -> Artifact:
    """DPO LoRA on the SFT model; the reference is the SFT model itself (adapter disabled)."""
    inputs = {"base": base.id, "sft": sft.id, "preferences": preferences.id("preferences")}

    def fit(run: TrainingRun) -> dict:
        rows = preferences.rows("preferences")
        return train_dpo(cfg, base_ref(base, ctx.cfg.model), [sft.path / "adapter"], rows, run)

    return ctx.train("dpo", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": [base.id, sft.id]})
