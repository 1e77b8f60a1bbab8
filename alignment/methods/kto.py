"""Kahneman-Tversky optimisation: TRL's KTOTrainer with a LoRA adapter on the SFT model, from unpaired feedback
(a prompt, one completion and a thumbs-up/down label) -- the common production case, a thumbs button.

The feedback is ``data.feedback`` where given (unbalanced labels allowed: ``desirable_weight`` and
``undesirable_weight`` rebalance them), else the preference pairs unpaired. The reference is the SFT model itself
(the adapter disabled), as for DPO.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from alignment.config.kto import KTOSection
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact
from alignment.data.from_pairs import balance
from alignment.data.run_data import RunData
from alignment.models.refs import BaseRef, base_ref

logger = logging.getLogger("alignment.methods.kto")
ADVISED_RATIO = (1.0, 4 / 3)  # TRL's advice for desirable_weight x up / (undesirable_weight x down)


def train_kto(
    cfg: KTOSection, base: BaseRef, sft_adapters: Sequence[Path], feedback: list[dict], run: TrainingRun
) -> dict:
    """Train a KTO LoRA adapter on the SFT model (the base with ``sft_adapters`` merged in) from unpaired feedback
    rows; saves ``run.out_dir / "adapter"``."""
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    from alignment.models.modeling import fit, load_causal_lm, load_tokenizer, lora_config, trainer_args

    counts = balance(feedback, cfg.desirable_weight, cfg.undesirable_weight)
    if not counts["desirable"] or not counts["undesirable"]:
        raise ValueError(
            f"KTO needs thumbs-up and thumbs-down rows; the feedback has {counts['desirable']} up and "
            f"{counts['undesirable']} down"
        )
    low, high = ADVISED_RATIO
    if not low <= counts["weighted_ratio"] <= high:
        logger.warning(
            "kto: %d thumbs-up and %d thumbs-down rows weigh %.2f to 1 (TRL advises %.2f-%.2f): set "
            "kto.desirable_weight or kto.undesirable_weight to rebalance",
            counts["desirable"],
            counts["undesirable"],
            counts["weighted_ratio"],
            low,
            high,
        )
    trainer = KTOTrainer(
        model=load_causal_lm(base, sft_adapters, device=run.device.name),
        ref_model=None,
        args=trainer_args(KTOConfig, cfg, run),
        train_dataset=Dataset.from_list(feedback),
        processing_class=load_tokenizer(base),
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),  # a fresh adapter: disabled, it is the SFT model
    )
    metrics = fit(trainer, run, cfg) | {"rows": len(feedback)} | counts
    logs = [entry for entry in trainer.state.log_history if "kl" in entry]
    if logs:
        metrics["final_kl"] = logs[-1]["kl"]
    return metrics


def kto_stage(cfg: KTOSection, ctx: StageContext, preferences: RunData, base: Artifact, sft: Artifact) -> Artifact:
    """KTO LoRA on the SFT model from the run's unpaired feedback (given, or the pairs unpaired)."""
    inputs = {"base": base.id, "sft": sft.id} | preferences.feedback_input()

    def fit(run: TrainingRun) -> dict:
        rows = preferences.learning_rows("feedback")
        return train_kto(cfg, base_ref(base, ctx.cfg.model), [sft.path / "adapter"], rows, run)

    return ctx.train("kto", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": [base.id, sft.id]})
