"""Supervised finetuning: TRL's SFTTrainer with a PEFT LoRA adapter, loss on completions only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from datasets import Dataset
from trl import SFTConfig as TRLSFTConfig
from trl import SFTTrainer

from alignment.config import SFTConfig
from alignment.modeling import (
    Checkpointing,
    ProgressCallback,
    fit,
    load_causal_lm,
    load_tokenizer,
    lora_config,
    trainer_args,
)
from alignment.records import to_conversation


def sft_dataset(rows: list[dict]) -> Dataset:
    """Demonstrations as conversational prompt/completion rows (TRL masks the prompt from the loss)."""
    return Dataset.from_list(
        [
            {"prompt": to_conversation(r["prompt"]), "completion": [{"role": "assistant", "content": r["completion"]}]}
            for r in rows
        ]
    )


def train_sft(
    cfg: SFTConfig,
    base: Path | str,
    demonstrations: list[dict],
    out_dir: Path,
    device: str = "cpu",
    bf16: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] = print,
    checkpointing: Checkpointing | None = None,
) -> dict[str, float]:
    """Train a LoRA adapter on the demonstrations; saves it to ``out_dir/adapter``."""
    tok = load_tokenizer(base)
    model = load_causal_lm(base, device=device)
    args = trainer_args(
        TRLSFTConfig,
        out_dir / "trainer",
        cfg,
        device,
        bf16,
        seed,
        checkpointing,
        completion_only_loss=True,
        max_length=128,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=sft_dataset(demonstrations),
        processing_class=tok,
        peft_config=lora_config(cfg, "CAUSAL_LM"),
        callbacks=[ProgressCallback("sft", progress)],
    )
    result, resumed_from = fit(trainer, checkpointing, progress)
    trainer.model.save_pretrained(out_dir / "adapter")
    return {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "resumed_from_step": resumed_from,
        "examples": len(demonstrations),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
