"""Supervised finetuning: TRL's SFTTrainer with a PEFT LoRA adapter, loss on completions only."""

from __future__ import annotations

from alignment.config.sft import SFTSection
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact
from alignment.data.run_data import RunData
from alignment.models.refs import BaseRef, base_ref


def train_sft(cfg: SFTSection, base: BaseRef, demonstrations: list[dict], run: TrainingRun) -> dict:
    """Train a LoRA adapter on the demonstrations (rows in a TRL SFT format); saves ``run.out_dir / "adapter"``."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from alignment.models.modeling import fit, load_causal_lm, load_tokenizer, lora_config, trainer_args

    trainer = SFTTrainer(
        model=load_causal_lm(base, device=run.device.name),
        args=trainer_args(SFTConfig, cfg, run),
        train_dataset=Dataset.from_list(demonstrations),
        processing_class=load_tokenizer(base),
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),
    )
    return fit(trainer, run, cfg) | {
        "examples": len(demonstrations),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }


def sft_stage(cfg: SFTSection, ctx: StageContext, data: RunData, base: Artifact) -> Artifact:
    """LoRA SFT of the base on the demonstrations."""
    inputs = {"base": base.id, "demonstrations": data.id("sft")}

    def fit(run: TrainingRun) -> dict:  # the rows are loaded only when the stage trains, not when it is reused
        return train_sft(cfg, base_ref(base, ctx.cfg.model), data.rows("sft"), run)

    return ctx.train("sft", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": [base.id]})
