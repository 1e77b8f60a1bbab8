"""Direct preference optimisation: TRL's DPOTrainer with a LoRA adapter on the SFT model.

The reference model is the same network with the adapter disabled (no second copy in memory).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alignment.config.dpo import DPOSection
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact
from alignment.data.run_data import RunData
from alignment.models.refs import BaseRef, base_ref

if TYPE_CHECKING:  # the calibrated stop imports transformers: only a stage that uses it loads it
    from alignment.evaluation.metrics import Judge
    from alignment.evaluation.operating_point_stop import OperatingPoint

REFERENCE_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")  # TRL's names: DPOTrainer reads them from the rows
REFERENCE_FILE = "reference.jsonl"  # the reference artifact's rows (``alignment.methods.reference`` writes them)


def load_reference(art: Artifact) -> list[dict]:
    """The rows a reference artifact wrote, one per preference pair, in the pairs' order."""
    return [json.loads(line) for line in (art.path / REFERENCE_FILE).read_text().splitlines() if line.strip()]


def dpo_trainer(
    cfg: DPOSection,
    base: BaseRef,
    sft_adapters: Sequence[Path],
    preferences: list[dict],
    run: TrainingRun,
    *,
    lazy_reference: bool = True,
):
    """TRL's DPOTrainer for a fresh LoRA on the SFT model (the base with ``sft_adapters`` merged in). Rows that
    already carry the reference log-probabilities (``REFERENCE_COLUMNS``, the reference artifact's) are not
    computed again. Otherwise, with ``precompute_ref_log_probs``, each pair's are computed the first time a step
    draws it and kept for the later epochs (``lazy_reference``; a short run pays only for the pairs it trains on),
    or, with ``lazy_reference`` off, by TRL for every pair before training; without it, in every step."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from alignment.models.modeling import load_causal_lm, load_tokenizer, lora_config, trainer_args

    class StoredReferenceDPOTrainer(DPOTrainer):
        reference_cache: dict[bytes, tuple[float, float]]  # by the pair's tokens: its reference log-probabilities
        reference_computed = 0  # pairs whose reference log-probabilities this trainer computed lazily

        def _precompute_ref_logps(self, dataset, name, batch_size):
            if all(c in dataset.column_names for c in REFERENCE_COLUMNS):
                return dataset
            # unknown yet: computed when a step first draws the pair. Not with FSDP or DeepSpeed, whose sharded forward
            # every process must run together, while each process draws its own pairs: there, TRL's pass first.
            if lazy_reference and not (self.is_fsdp_enabled or self.is_deepspeed_enabled):
                if not hasattr(self, "reference_cache"):
                    self.reference_cache = {}
                for column in REFERENCE_COLUMNS:
                    dataset = dataset.add_column(column, [float("nan")] * len(dataset))
                return dataset
            return super()._precompute_ref_logps(dataset, name, batch_size)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if REFERENCE_COLUMNS[0] in inputs and torch.isnan(inputs[REFERENCE_COLUMNS[0]]).any():
                self._fill_reference(inputs)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def _fill_reference(self, inputs) -> None:
            """The reference log-probabilities of the batch's pairs, from the cache or computed now (TRL's own
            ``compute_ref_log_probs``: no gradients, adapter disabled), written into the batch."""
            ids, mask = inputs["input_ids"].cpu(), inputs["attention_mask"].bool().cpu()
            answer = inputs["completion_mask"].cpu()  # where the prompt ends: part of what the values depend on
            pairs = ids.shape[0] // 2  # the batch is [chosen..., rejected...]

            def key(row: int) -> bytes:
                return ids[row][mask[row]].numpy().tobytes() + answer[row][mask[row]].numpy().tobytes()

            keys = [key(i) + b"|" + key(i + pairs) for i in range(pairs)]
            if not all(key in self.reference_cache for key in keys):
                chosen, rejected = self.compute_ref_log_probs(self.model, inputs)
                for key, c, r in zip(keys, chosen.tolist(), rejected.tolist(), strict=True):
                    if key not in self.reference_cache:
                        self.reference_computed += 1
                    self.reference_cache[key] = (c, r)
            values = torch.tensor([self.reference_cache[key] for key in keys], dtype=inputs[REFERENCE_COLUMNS[0]].dtype)
            inputs[REFERENCE_COLUMNS[0]] = values[:, 0].to(ids.device)
            inputs[REFERENCE_COLUMNS[1]] = values[:, 1].to(ids.device)

    return StoredReferenceDPOTrainer(
        model=load_causal_lm(base, sft_adapters, device=run.device.name),
        ref_model=None,
        args=trainer_args(DPOConfig, cfg, run),
        train_dataset=Dataset.from_list(preferences),
        processing_class=load_tokenizer(base),
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),  # a fresh adapter: disabled, it is the SFT model
    )


def train_dpo(
    cfg: DPOSection,
    base: BaseRef,
    sft_adapters: Sequence[Path],
    preferences: list[dict],
    run: TrainingRun,
    *,
    reference: list[dict] | None = None,
    stop: tuple[OperatingPoint, Judge] | None = None,
) -> dict:
    """Train a DPO LoRA adapter on the SFT model (the base with ``sft_adapters`` merged in); saves
    ``run.out_dir / "adapter"``. ``reference`` holds the stored reference log-probabilities of each pair
    (``alignment.methods.reference``); without them, each pair's reference forward runs the first time a step
    draws it (``precompute_ref_log_probs``) or in every step. ``stop``: the operating point and the judge of the
    calibrated stop (``cfg.stop_at_operating_point``); its measurements go into the metrics as ``operating_point``."""
    from alignment.evaluation.operating_point_stop import OperatingPointStop
    from alignment.models.modeling import fit, load_tokenizer

    if reference is not None:
        if len(reference) != len(preferences):
            raise ValueError(f"{len(reference)} stored reference log-probs for {len(preferences)} pairs")
        preferences = [pair | ref for pair, ref in zip(preferences, reference, strict=True)]
        # TRL reads them from the rows only with precompute_ref_log_probs on
        cfg = cfg.model_copy(update={"precompute_ref_log_probs": True})
    trainer = dpo_trainer(cfg, base, sft_adapters, preferences, run)
    calibrated = None
    if stop is not None:
        point, judge = stop
        calibrated = OperatingPointStop(point, load_tokenizer(base), judge, cfg.operating_point_steps, run.report)
        trainer.add_callback(calibrated)
    metrics = fit(trainer, run, cfg) | {"pairs": len(preferences), "stored_reference": reference is not None}
    if reference is None and cfg.precompute_ref_log_probs:
        metrics["reference_pairs_computed"] = trainer.reference_computed
    if calibrated is not None:
        metrics["operating_point"] = calibrated.summary()
    logs = [entry for entry in trainer.state.log_history if "rewards/accuracies" in entry]
    if logs:
        metrics["final_reward_accuracy"] = logs[-1]["rewards/accuracies"]
        metrics["final_reward_margin"] = logs[-1].get("rewards/margins")
    return metrics


def dpo_stage(
    cfg: DPOSection,
    ctx: StageContext,
    preferences: RunData,
    base: Artifact,
    sft: Artifact,
    reference: Artifact | None = None,
) -> Artifact:
    """DPO LoRA on the SFT model; the reference is the SFT model itself (adapter disabled), its log-probabilities
    read from the reference artifact when ``precompute_ref_log_probs`` is on."""
    inputs = {"base": base.id, "sft": sft.id, "preferences": preferences.id("preferences")}
    if reference is not None:
        built_on = {k: reference.manifest.get("inputs", {}).get(k) for k in ("base", "sft", "preferences")}
        if built_on != inputs:
            raise ValueError(
                f"reference {reference.id} holds log-probabilities of other pairs or another SFT model "
                f"({built_on}) than this DPO run's ({inputs})"
            )
        inputs["reference"] = reference.id
    section = cfg.model_dump(mode="json")
    stop = None
    if cfg.stop_at_operating_point:  # the point is read (and checked) before anything trains
        from alignment.evaluation.metrics import make_judge
        from alignment.evaluation.operating_point_stop import OperatingPoint

        if preferences.preference_questions is None:
            raise ValueError("dpo.stop_at_operating_point measures the preference questions: none are set")
        point = OperatingPoint.from_questions(
            preferences.rows("preference_questions"), preferences.preference_questions.path
        )
        stop = (point, make_judge(ctx.cfg.judge))
        inputs["preference_questions"] = preferences.id("preference_questions")
        section["judge"] = ctx.cfg.judge.model_dump(mode="json")  # it decides what counts as abstaining

    def fit(run: TrainingRun) -> dict:
        rows = preferences.rows("preferences")
        stored = load_reference(reference) if reference is not None else None
        return train_dpo(
            cfg, base_ref(base, ctx.cfg.model), [sft.path / "adapter"], rows, run, reference=stored, stop=stop
        )

    return ctx.train("dpo", section, inputs, fit, {"model_chain": [base.id, sft.id]})
