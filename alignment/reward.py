"""The reward model: TRL's RewardTrainer on preference pairs, LoRA plus a trained score head."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import torch
from datasets import Dataset
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from trl import RewardConfig as TRLRewardConfig
from trl import RewardTrainer

from alignment.config import RewardConfig
from alignment.modeling import Checkpointing, ProgressCallback, fit, load_tokenizer, lora_config, trainer_args
from alignment.records import to_conversation


def preference_dataset(rows: list[dict]) -> Dataset:
    """Preference rows as conversational prompt/chosen/rejected (the format TRL's trainers take)."""
    return Dataset.from_list(
        [
            {
                "prompt": to_conversation(r["prompt"]),
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
            for r in rows
        ]
    )


def split_pairs(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded split of the pairs by prompt (no prompt in both), for held-out pairwise accuracy."""
    prompts = sorted({r["prompt"] for r in rows})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: round(len(prompts) * eval_fraction)])
    return [r for r in rows if r["prompt"] not in held], [r for r in rows if r["prompt"] in held]


def load_reward_model(base: Path | str, adapter: Path, device: str = "cpu") -> PreTrainedModel:
    """The reward model: base weights, LoRA merged, trained score head."""
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, dtype=torch.float32)
    tok = load_tokenizer(base)
    model.config.pad_token_id = tok.pad_token_id
    model = PeftModel.from_pretrained(model, str(adapter), autocast_adapter_dtype=False).merge_and_unload()
    return model.to(device).eval()


@torch.no_grad()
def score(model: PreTrainedModel, tok, prompts: list[str], answers: list[str], batch_size: int = 64) -> list[float]:
    """Reward of each (prompt, answer), rendered with the chat template as in training."""
    texts = [
        tok.apply_chat_template(to_conversation(p, a), tokenize=False) for p, a in zip(prompts, answers, strict=True)
    ]
    out: list[float] = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        out.extend(model(**enc).logits[:, 0].float().tolist())
    return out


def pairwise_accuracy(model: PreTrainedModel, tok, rows: list[dict]) -> float:
    """Share of pairs whose chosen answer the model scores above the rejected one."""
    prompts = [r["prompt"] for r in rows]
    chosen = score(model, tok, prompts, [r["chosen"] for r in rows])
    rejected = score(model, tok, prompts, [r["rejected"] for r in rows])
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(rows)


def train_reward(
    cfg: RewardConfig,
    base: Path | str,
    preferences: list[dict],
    out_dir: Path,
    device: str = "cpu",
    bf16: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] = print,
    checkpointing: Checkpointing | None = None,
) -> dict[str, float]:
    """Train the reward model (LoRA + score head) from the base; saves ``out_dir/adapter``."""
    tok = load_tokenizer(base)
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    train_rows, held_rows = split_pairs(preferences, cfg.eval_fraction, seed)
    args = trainer_args(TRLRewardConfig, out_dir / "trainer", cfg, device, bf16, seed, checkpointing, max_length=128)
    trainer = RewardTrainer(
        model=model.to(device),
        args=args,
        train_dataset=preference_dataset(train_rows),
        processing_class=tok,
        peft_config=lora_config(cfg, "SEQ_CLS", modules_to_save=["score"]),
        callbacks=[ProgressCallback("reward", progress)],
    )
    result, resumed_from = fit(trainer, checkpointing, progress)
    trainer.model.save_pretrained(out_dir / "adapter")
    metrics = {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "resumed_from_step": resumed_from,
        "train_pairs": len(train_rows),
    }
    if held_rows:
        trained = load_reward_model(base, out_dir / "adapter", device)
        metrics["heldout_pairs"] = len(held_rows)
        metrics["heldout_pairwise_accuracy"] = pairwise_accuracy(trained, tok, held_rows)
    return metrics
