"""Direct preference optimisation: TRL's DPOTrainer with a LoRA adapter on the SFT model.

The reference model is the same network with the adapter disabled (no second copy in memory).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from trl import DPOConfig as TRLDPOConfig
from trl import DPOTrainer

from alignment.config import DPOConfig
from alignment.modeling import (
    Checkpointing,
    ProgressCallback,
    fit,
    load_causal_lm,
    load_tokenizer,
    lora_config,
    trainer_args,
)
from alignment.reward import preference_dataset


def train_dpo(
    cfg: DPOConfig,
    base: Path | str,
    sft_adapters: Sequence[Path],
    preferences: list[dict],
    out_dir: Path,
    device: str = "cpu",
    bf16: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] = print,
    checkpointing: Checkpointing | None = None,
) -> dict[str, float]:
    """Train a DPO LoRA adapter on top of the (merged) SFT model; saves ``out_dir/adapter``."""
    tok = load_tokenizer(base)
    model = load_causal_lm(base, sft_adapters, device=device)
    args = trainer_args(
        TRLDPOConfig, out_dir / "trainer", cfg, device, bf16, seed, checkpointing, beta=cfg.beta, max_length=128,
        loss_type=list(cfg.loss_type), loss_weights=cfg.loss_weights,
    )  # fmt: skip
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=preference_dataset(preferences),
        processing_class=tok,
        peft_config=lora_config(cfg, "CAUSAL_LM"),
        callbacks=[ProgressCallback("dpo", progress)],
    )
    result, resumed_from = fit(trainer, checkpointing, progress)
    trainer.model.save_pretrained(out_dir / "adapter")
    logs = [entry for entry in trainer.state.log_history if "rewards/accuracies" in entry]
    metrics = {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "resumed_from_step": resumed_from,
        "pairs": len(preferences),
    }
    if logs:
        metrics["final_reward_accuracy"] = logs[-1]["rewards/accuracies"]
        metrics["final_reward_margin"] = logs[-1].get("rewards/margins")
    return metrics
