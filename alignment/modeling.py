"""Loading models and tokenizers, LoRA configs, and the bridge from Trainer logs to our progress lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, TrainerCallback

from alignment.config import LoraSection


def load_tokenizer(path: str | Path):
    """The tokenizer saved with a base model (left padding, a pad token)."""
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if tok.chat_template is None:
        raise ValueError(f"{path}: the tokenizer has no chat template; set one before aligning this model")
    return tok


def load_causal_lm(base: str | Path, adapters: Sequence[Path] = (), device: str = "cpu") -> PreTrainedModel:
    """The base causal LM with each LoRA adapter merged in, in order (base -> SFT -> policy)."""
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter), autocast_adapter_dtype=False).merge_and_unload()
    return model.to(device).eval()


def lora_config(section: LoraSection, task_type: str, **extra) -> LoraConfig:
    """A PEFT LoRA config from a config section."""
    return LoraConfig(
        r=section.lora_r,
        lora_alpha=section.lora_alpha,
        lora_dropout=section.lora_dropout,
        target_modules=section.target_modules,
        task_type=task_type,
        **extra,
    )


class ProgressCallback(TrainerCallback):
    """Forward Trainer log lines (loss, learning rate, step) to a progress function."""

    def __init__(self, stage: str, progress: Callable[[str], None]) -> None:
        self.stage, self.progress = stage, progress

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
            self.progress(f"{self.stage} step {state.global_step}/{state.max_steps}: {shown}")


def trainer_args(cls, out_dir: Path, section, device: str, bf16: bool, seed: int, **extra):
    """TRL config objects with the settings every stage shares (no checkpoints, no hub, CPU-safe)."""
    return cls(
        output_dir=str(out_dir),
        num_train_epochs=section.epochs,
        per_device_train_batch_size=section.batch_size,
        learning_rate=section.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        bf16=bf16,
        gradient_checkpointing=False,
        use_cpu=device == "cpu",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **extra,
    )
