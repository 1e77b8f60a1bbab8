"""Supervised finetuning: TRL's SFTTrainer with a PEFT LoRA adapter, loss on completions only."""

from __future__ import annotations

from pathlib import Path

from alignment.config import SFTSection
from alignment.context import StageContext, TrainingRun
from alignment.data_files import DataFiles
from alignment.model_refs import base_path
from alignment.records import load_demonstrations
from alignment.store import Artifact


def train_sft(cfg: SFTSection, base: Path | str, demonstrations: list[dict], run: TrainingRun) -> dict:
    """Train a LoRA adapter on the demonstrations; saves it to ``run.out_dir / "adapter"``."""
    from trl import SFTConfig, SFTTrainer

    from alignment.modeling import fit, load_causal_lm, load_tokenizer, lora_config, trainer_args
    from alignment.trl_datasets import sft_dataset

    trainer = SFTTrainer(
        model=load_causal_lm(base, device=run.device.name),
        args=trainer_args(SFTConfig, cfg, run),
        train_dataset=sft_dataset(demonstrations),
        processing_class=load_tokenizer(base),
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),
    )
    result, resumed_from = fit(trainer, run)
    trainer.model.save_pretrained(run.out_dir / "adapter")
    return {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "resumed_from_step": resumed_from,
        "examples": len(demonstrations),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }


def sft_stage(cfg: SFTSection, ctx: StageContext, data: DataFiles, base: Artifact) -> Artifact:
    """LoRA SFT of the base on the demonstrations."""
    rows = load_demonstrations(data.demonstrations)
    inputs = {"base": base.id, "demonstrations": data.id("demonstrations")}

    def fit(run: TrainingRun) -> dict:
        return train_sft(cfg, base_path(base), rows, run)

    return ctx.train("sft", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": [base.id]})
