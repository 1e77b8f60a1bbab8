"""GRPO with a verifiable reward: TRL's GRPOTrainer with a LoRA adapter on the SFT model. It samples
``num_generations`` answers to each preference-role question and scores them with the gold judge against the
question's accepted answers -- correct +1, "I don't know" 0, wrong -1, TruthRL's ternary reward -- so abstaining
beats guessing wrong and a right answer beats abstaining. No reward model is involved, so none can be
over-optimised; the KL penalty (``beta``) holds the policy to the SFT model (the adapter disabled)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from alignment.config.grpo import GoldRewards, GRPOSection
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact
from alignment.data.run_data import RunData
from alignment.evaluation.metrics import Judge, make_judge
from alignment.models.refs import BaseRef, base_ref


def gold_reward(judge: Judge, rewards: GoldRewards | None = None) -> Callable[..., list[float]]:
    """A TRL reward function: each completion's gold reward (``rewards`` of its judged label, TruthRL's ternary one
    by default) against its question's ``answers`` (a dataset column, which TRL passes by name)."""
    rewards = rewards or GoldRewards()

    def gold(prompts: list, completions: list, answers: list[list[str]], **_: object) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [rewards.of(judge(text, accepted)) for text, accepted in zip(texts, answers, strict=True)]

    return gold


def train_grpo(
    cfg: GRPOSection,
    base: BaseRef,
    sft_adapters: Sequence[Path],
    questions: list[dict],
    run: TrainingRun,
    judge: Judge | None = None,
) -> dict:
    """Train a GRPO LoRA adapter on the SFT model (the base with ``sft_adapters`` merged in) on questions (a
    conversational ``prompt`` and its accepted ``answers``) against the gold judge; saves
    ``run.out_dir / "adapter"``."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from alignment.models.modeling import fit, load_causal_lm, load_tokenizer, lora_config, trainer_args
    from alignment.models.shared_prefix import sharing_prompts

    trainer = sharing_prompts(GRPOTrainer)(
        model=load_causal_lm(base, sft_adapters, run.device.name),
        reward_funcs=gold_reward(judge or Judge(), cfg.rewards),
        args=trainer_args(GRPOConfig, cfg, run),
        train_dataset=Dataset.from_list(questions),
        processing_class=load_tokenizer(base),
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),
    )
    metrics = fit(trainer, run, cfg) | {"questions": len(questions)}
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    if logs:
        metrics["first_reward"], metrics["final_reward"] = logs[0]["reward"], logs[-1]["reward"]
        metrics["final_kl"] = logs[-1].get("kl")
    return metrics


def grpo_stage(cfg: GRPOSection, ctx: StageContext, preferences: RunData, base: Artifact, sft: Artifact) -> Artifact:
    """GRPO LoRA on the SFT model (or, with ``start_from: base``, on the model as given), rewarded by the gold judge
    on the preference-role questions."""
    on_sft = cfg.start_from == "sft"
    inputs = {"base": base.id, **({"sft": sft.id} if on_sft else {})}
    inputs["questions"] = preferences.id("preference_questions")

    def fit(run: TrainingRun) -> dict:
        questions = preferences.learning_rows("questions")
        adapters = [sft.path / "adapter"] if on_sft else []
        return train_grpo(cfg, base_ref(base, ctx.cfg.model), adapters, questions, run, make_judge(ctx.cfg.judge))

    chain = [base.id, sft.id] if on_sft else [base.id]
    return ctx.train("grpo", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": chain})
