"""Online RLHF: TRL's RLOOTrainer trains a LoRA policy from the SFT model against our trained reward model.

For each preference prompt it samples ``num_generations`` answers, scores them with the reward model (its
LoRA and score head merged), and uses the leave-one-out mean of the other answers' rewards as baseline; a
KL penalty (``beta``) to the SFT model, which is the same network with the adapter disabled, keeps it close.
The gold judge scores the same answers at weight 0, for the over-optimisation curve.
TRL 1.16 has no PPO; RLOO and GRPO are its online methods.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alignment.config.rloo import RLOOSection
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact
from alignment.data.run_data import RunData
from alignment.evaluation.metrics import GOLD_SCORE, Judge, make_judge
from alignment.evaluation.overoptimisation import overoptimisation
from alignment.models.refs import BaseRef, base_ref


@dataclass
class Curve:
    """The over-optimisation curve (Gao et al. 2022), read off the policy's own rollouts: for each window of steps,
    the reward model's mean score of the answers the policy sampled (proxy), their mean gold score (the gold judge
    against the prompt's accepted answers: +1 right, 0 "I don't know", -1 wrong; None where the prompts have none)
    and their per-token KL to SFT (TRL's estimate; None with ``beta`` 0, where TRL computes no reference). TRL
    computes all three to train, so the curve costs no generation or forward pass of its own.

    A point closes at step 1 (the first step's rollouts, sampled by the SFT model itself: KL 0), every ``every``
    steps and at the last step, and averages the steps since the previous point. Points are kept beside the
    checkpoints, so a resumed run keeps the points measured before the kill."""

    every: int
    store: Path | None = None
    points: list[dict] = field(default_factory=list)
    proxy_key: str = "reward"  # TRL's log keys of the proxy and the gold reward (``rewards/<function>/mean``)
    gold_key: str | None = None
    _window: list[tuple[int, dict]] = field(default_factory=list)  # (steps, TRL's logged means) since the last point
    _logged_step: int = 0

    def load(self, resumed_from: int) -> None:
        """The points measured up to ``resumed_from`` (a checkpoint's step), from the store."""
        if self.store and self.store.is_file():
            self.points = [p for p in json.loads(self.store.read_text()) if p["step"] <= resumed_from]
        self._logged_step = resumed_from

    def due(self, step: int, max_steps: int) -> bool:
        """Whether a point closes at ``step``."""
        return step == 1 or step % self.every == 0 or step == max_steps

    def add(self, step: int, max_steps: int, logs: dict) -> None:
        """One of TRL's logs (the means of its metrics since its previous log), closing a point when one is due."""
        if "reward" not in logs or step <= self._logged_step:  # the end-of-training summary has no rollout metrics
            return
        self._window.append((step - self._logged_step, logs))
        self._logged_step = step
        if self.due(step, max_steps):
            self._close(step)

    def _close(self, step: int) -> None:
        def mean(key: str | None) -> float | None:
            known = [(n, logs[key]) for n, logs in self._window if key and logs.get(key) is not None]
            return sum(n * v for n, v in known) / sum(n for n, _ in known) if known else None

        point = {
            "step": step,
            "steps": sum(n for n, _ in self._window),
            "kl": mean("kl"),
            "proxy_reward": mean(self.proxy_key),
            "gold_reward": mean(self.gold_key),
        }
        self._window = []
        self.points = [p for p in self.points if p["step"] != step] + [point]
        if self.store:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            self.store.write_text(json.dumps(self.points))

    def summary(self) -> dict:
        """Where gold reward peaked, and whether the proxy kept rising after it (``overoptimisation``)."""
        return overoptimisation(self.points)


def curve_callback(curve: Curve):
    """A Trainer callback that has TRL log its rollout metrics whenever a point of ``curve`` is due and adds every
    log to the curve (in the first process only, when several train: TRL's logged metrics are over all of them)."""
    from transformers import TrainerCallback

    class CurveCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if curve.due(state.global_step, state.max_steps):
                control.should_log = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                curve.add(state.global_step, state.max_steps, logs)

    return CurveCallback()


def gold_score(judge: Judge) -> Callable[..., list[float | None]]:
    """A TRL reward function given weight 0 (it does not train the policy): each sampled answer's gold score
    (``GOLD_SCORE`` of its judged label) against its prompt's accepted ``answers``, None where the prompt has none
    (TRL leaves those out of the mean it logs)."""

    def gold(prompts: list, completions: list, answers: list[list[str] | None], **_: object) -> list[float | None]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [None if a is None else GOLD_SCORE[judge(t, a)] for t, a in zip(texts, answers, strict=True)]

    return gold


def train_rloo(
    cfg: RLOOSection,
    base: BaseRef,
    adapters: tuple[Sequence[Path], Path],
    prompts: list[dict],
    run: TrainingRun,
    curve: Curve,
    *,
    judge: Judge | None = None,
) -> dict:
    """Train an RLOO LoRA adapter on the SFT model (the base with ``adapters[0]`` merged in) against the reward
    model (the base with ``adapters[1]``), recording ``curve`` from its rollouts (gold-scored by ``judge`` where the
    prompts carry accepted ``answers``); saves ``run.out_dir / "adapter"``."""
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
    from alignment.models.shared_prefix import sharing_prompts

    sft_adapters, reward_adapter = adapters
    tok = load_tokenizer(base)
    last = last_complete_checkpoint(run.checkpointing.directory) if run.checkpointing else None
    curve.load(checkpoint_step(last) if last else 0)
    reward_funcs: list = [load_reward_model(base, reward_adapter, run.device.name)]
    if any(p.get("answers") is not None for p in prompts):  # the gold judge scores the rollouts, weight 0
        reward_funcs.append(gold_score(judge or Judge()))
    trainer = sharing_prompts(RLOOTrainer)(
        model=load_causal_lm(base, sft_adapters, run.device.name),
        reward_funcs=reward_funcs,
        args=trainer_args(RLOOConfig, cfg, run, reward_weights=[1.0, 0.0][: len(reward_funcs)]),
        train_dataset=Dataset.from_list(prompts),
        processing_class=tok,
        reward_processing_classes=[tok] * len(reward_funcs),
        peft_config=lora_config(cfg.lora, "CAUSAL_LM"),
        callbacks=[curve_callback(curve)],
    )
    curve.proxy_key, *gold = [f"rewards/{name}/mean" for name in trainer.reward_func_names]
    curve.gold_key = gold[0] if gold else None
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
    """RLOO LoRA on the SFT model against the reward model, on the preference prompts; the over-optimisation curve
    is read off its rollouts, gold-scored against the preference-role questions' accepted answers where the data
    has them."""
    inputs = {"base": base.id, "sft": sft.id, "reward": reward.id, "preferences": preferences.id("preferences")}
    if preferences.preference_questions is not None:
        inputs["preference_questions"] = preferences.id("preference_questions")

    def fit(run: TrainingRun) -> dict:
        prompts = preferences.learning_rows("prompts")
        store = run.checkpointing.directory / "curve.json" if run.checkpointing else None
        curve = Curve(cfg.curve_every_steps, store)
        adapters = ([sft.path / "adapter"], reward.path / "adapter")
        judge = make_judge(ctx.cfg.judge)
        return train_rloo(cfg, base_ref(base, ctx.cfg.model), adapters, prompts, run, curve, judge=judge)

    return ctx.train("rloo", cfg.model_dump(mode="json"), inputs, fit, {"model_chain": [base.id, sft.id]})
