"""The DPO reference's log-probabilities of every preference pair, computed once and stored as an artifact.

DPO compares the policy with the reference (the SFT model) on each pair's chosen and rejected answer. The
reference is fixed, so its log-probabilities depend only on the SFT model, the pairs, how pairs are tokenized
and the compute dtype. A DPO re-run with another ``beta``, learning rate or number of epochs, or a retrain
whose pairs did not change, reuses this artifact instead of recomputing them; within one run, DPO no longer
runs the reference forward in every step of every epoch. (TRL 1.16's ``precompute_ref_log_probs`` computes
them once per run, and reuses them across runs only for a dataset loaded from disk.)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from alignment.config.dpo import DPOSection
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact
from alignment.data.run_data import RunData
from alignment.methods.dpo import REFERENCE_COLUMNS, REFERENCE_FILE, dpo_trainer
from alignment.models.refs import BaseRef, base_ref

# DPO fields that shape only the optimisation, not the reference's log-probabilities: changing them reuses the
# artifact. Any other field (max_length, truncation, a pass-through key) is part of its id.
OPTIMISATION_ONLY = frozenset(
    {
        "beta",
        "loss_type",
        "loss_weights",
        "learning_rate",
        "lr_scheduler_type",
        "warmup_steps",
        "weight_decay",
        "max_grad_norm",
        "num_train_epochs",
        "logging_steps",
        "gradient_accumulation_steps",
        "activation_checkpointing",
        "autocast_adapter_dtype",
        "lora",
        "report_to",
    }
)


def reference_section(cfg: DPOSection, bf16: bool, dtype: str) -> dict:
    """What the reference log-probabilities depend on besides their inputs: the DPO section without its
    optimisation-only fields, and the precision they are computed in (``compute.bf16``, ``model.dtype``)."""
    section = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in OPTIMISATION_ONLY}
    return section | {"bf16": bf16, "dtype": dtype}


def compute_reference(
    cfg: DPOSection, base: BaseRef, sft_adapters: Sequence[Path], preferences: list[dict], run: TrainingRun
) -> list[dict]:
    """The reference's summed log-probability of each pair's chosen and rejected answer, in row order, computed
    by TRL's own DPO precompute on the DPO stage's trainer (same tokenization and truncation)."""
    before = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # TRL's precompute bar would land in the run log; our progress is events
    try:
        precompute = cfg.model_copy(update={"precompute_ref_log_probs": True})
        found = dpo_trainer(precompute, base, sft_adapters, preferences, run, lazy_reference=False).train_dataset
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE")
        else:
            os.environ["TQDM_DISABLE"] = before
    if len(found) != len(preferences):
        raise RuntimeError(f"reference log-probs for {len(found)} of {len(preferences)} pairs")
    columns = zip(*(found[c] for c in REFERENCE_COLUMNS), strict=True)
    return [dict(zip(REFERENCE_COLUMNS, values, strict=True)) for values in columns]


def reference_stage(
    cfg: DPOSection, ctx: StageContext, preferences: RunData, base: Artifact, sft: Artifact
) -> Artifact:
    """The SFT model's log-probabilities of the preference pairs: DPO's reference, stored."""
    inputs = {"base": base.id, "sft": sft.id, "preferences": preferences.id("preferences")}

    def build(tmp: Path) -> dict:
        rows = preferences.rows("preferences")
        ctx.report("reference", f"log-probabilities of {len(rows)} pairs under the SFT model")
        run = TrainingRun(tmp, ctx.device(), ctx.cfg.seed, ctx.progress, "reference")
        refs = compute_reference(cfg, base_ref(base, ctx.cfg.model), [sft.path / "adapter"], rows, run)
        (tmp / REFERENCE_FILE).write_text("".join(json.dumps(r) + "\n" for r in refs))
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        margins = [r["ref_chosen_logps"] - r["ref_rejected_logps"] for r in refs]
        return {"pairs": len(refs), "mean_margin": sum(margins) / len(margins)}

    section = reference_section(cfg, ctx.cfg.compute.bf16, ctx.cfg.model.dtype)
    return ctx.materialize("reference", section, inputs, build, {"model_chain": [base.id, sft.id]})
