"""Online RLHF: TRL's RLOOTrainer trains a LoRA policy from the SFT model against our trained reward model.

For each preference prompt it samples ``num_generations`` answers, scores them with the reward model (its
LoRA and score head merged), and uses the leave-one-out mean of the other answers' rewards as baseline; a
KL penalty (``beta``) to the SFT model, which is the same network with the adapter disabled, keeps it close.
TRL 1.16 has no PPO; RLOO and GRPO are its online methods.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alignment.config.rloo import RLOOSection
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact
from alignment.data.run_data import RunData
from alignment.evaluation.metrics import Judge, make_judge
from alignment.evaluation.overoptimisation import overoptimisation
from alignment.models.refs import BaseRef, base_ref


@dataclass
class Curve:
    """The over-optimisation curve: every few steps, the policy's greedy answers to held-out questions scored by
    the reward model (proxy) and the gold judge, with the policy's per-token KL to SFT (Gao et al. 2022).
    Points are kept beside the checkpoints, so a resumed run keeps the points measured before the kill."""

    questions: list[dict]
    judge: Judge
    every: int
    max_new_tokens: int
    store: Path | None = None
    points: list[dict] = field(default_factory=list)

    def load(self, resumed_from: int) -> None:
        if self.store and self.store.is_file():
            self.points = [p for p in json.loads(self.store.read_text()) if p["step"] <= resumed_from]

    def measure(self, model, tok, reward_model, step: int) -> None:
        """One point of the curve for the policy as it is at ``step``."""
        import torch

        from alignment.evaluation.metrics import GOLD_SCORE
        from alignment.models.generation import generate_answers, generation_config, mean_token_kl, reward_scores

        class Reference:  # the SFT model: the same network with the policy's adapter disabled
            device = model.device

            def __call__(self, **kwargs):
                with model.disable_adapter():
                    return model(**kwargs)

        prompts = [q["question"] for q in self.questions]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            answers = generate_answers(model, tok, prompts, generation_config(tok, self.max_new_tokens))
            proxy = reward_scores(reward_model, tok, prompts, answers)
            # a LoRA whose B matrices are all zero (PEFT's initialisation: before the first step) adds nothing, so the
            # policy is the SFT model and its KL exactly 0: no forward passes needed
            lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
            fresh = bool(lora_b) and not any(p.any() for p in lora_b)
            kl = [(0.0, 0)] if fresh else mean_token_kl(model, Reference(), tok, prompts, answers)
        model.train(was_training)
        gold = [GOLD_SCORE[self.judge(a, q["answers"])] for a, q in zip(answers, self.questions, strict=True)]
        tokens = sum(n for _, n in kl)
        point = {
            "step": step,
            "kl": sum(k for k, _ in kl) / max(tokens, 1),
            "proxy_reward": sum(proxy) / len(proxy),
            "gold_reward": sum(gold) / len(gold),
        }
        self.points = [p for p in self.points if p["step"] != step] + [point]
        if self.store:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            self.store.write_text(json.dumps(self.points))

    def summary(self) -> dict:
        """Where gold reward peaked, and whether the proxy kept rising after it (``overoptimisation``)."""
        return overoptimisation(self.points)


def curve_callback(curve: Curve, tok, reward_model):
    """A Trainer callback that measures the curve at the start, every ``curve.every`` steps and at the end (in
    the first process only, when several train)."""
    from transformers import TrainerCallback

    class CurveCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if state.is_world_process_zero and not any(p["step"] == state.global_step for p in curve.points):
                curve.measure(model, tok, reward_model, state.global_step)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.is_world_process_zero and (
                state.global_step % curve.every == 0 or state.global_step == state.max_steps
            ):
                curve.measure(model, tok, reward_model, state.global_step)

    return CurveCallback()


def train_rloo(
    cfg: RLOOSection, base: BaseRef, adapters: tuple[Sequence[Path], Path], prompts: list[dict], run, curve: Curve
) -> dict:
    """Train an RLOO LoRA adapter on the SFT model (the base with ``adapters[0]`` merged in) against the reward
    model (the base with ``adapters[1]``), measuring ``curve`` as it goes; saves ``run.out_dir / "adapter"``."""
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    from alignment.core.checkpoints import checkpoint_step, last_complete_checkpoint
    from alignment.models.modeling import (
        fit,
        load_causal_lm,
        load_reward_model,
        load_tokenizer,
        lora_config,
        trainer_args,
    )

    sft_adapters, reward_adapter = adapters
    tok = load_tokenizer(base)
    reward_model = load_reward_model(base, reward_adapter, run.device.name)
    last = last_complete_checkpoint(run.checkpointing.directory) if run.checkpointing else None
    curve.load(checkpoint_step(last) if last else 0)
    trainer = RLOOTrainer(
        model=load_causal_lm(base, sft_adapters, run.device.name),
        reward_funcs=reward_model,
        args=trainer_args(RLOOConfig, cfg, run),
        train_dataset=Dataset.from_list(prompts),
        processing_class=tok,
        reward_processing_classes=tok,
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),
        callbacks=[curve_callback(curve, tok, reward_model)],
    )
    metrics = fit(trainer, run, cfg) | {"prompts": len(prompts)}
    if run.main:
        (run.out_dir / "curve.json").write_text(json.dumps(curve.points, indent=1) + "\n")
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    if logs:
        metrics["first_reward"], metrics["final_reward"] = logs[0]["reward"], logs[-1]["reward"]
        metrics["final_kl"] = logs[-1].get("kl")
    return metrics | curve.summary()


def rloo_stage(
    cfg: RLOOSection, ctx: StageContext, preferences: RunData, base: Artifact, sft: Artifact, *, reward: Artifact
) -> Artifact:
    """RLOO LoRA on the SFT model against the reward model, on the preference prompts; the over-optimisation
    curve is measured on ``curve_questions`` held-out questions drawn at random (seeded by the run's seed; the
    question files list known entities first, so a prefix would measure only known questions)."""
    inputs = {"base": base.id, "sft": sft.id, "reward": reward.id, "preferences": preferences.id("preferences")}
    inputs["questions"] = preferences.id("questions")

    def fit(run: TrainingRun) -> dict:
        prompts = preferences.learning_rows("prompts")
        store = run.checkpointing.directory / "curve.json" if run.checkpointing else None
        rows = preferences.rows("questions")
        questions = random.Random(ctx.cfg.seed).sample(rows, min(cfg.curve_questions, len(rows)))
        curve = Curve(questions, make_judge(ctx.cfg.judge), cfg.curve_every_steps, cfg.max_completion_length, store)
        adapters = ([sft.path / "adapter"], reward.path / "adapter")
        return train_rloo(cfg, base_ref(base, ctx.cfg.model), adapters, prompts, run, curve)

    return ctx.train("rloo", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": [base.id, sft.id]})
