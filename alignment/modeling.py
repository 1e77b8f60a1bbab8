"""Loading models and tokenizers, LoRA configs, and the bridge from Trainer logs to our progress lines."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PrinterCallback, TrainerCallback

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
    """Forward Trainer log lines to a progress function as ``"<stage> step <n>/<total>: ..."`` (the flow turns
    that prefix into a progress artifact), and a final ``done`` line."""

    def __init__(self, stage: str, progress: Callable[[str], None]) -> None:
        self.stage, self.progress = stage, progress

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
            self.progress(f"{self.stage} step {state.global_step}/{state.max_steps}: {shown}")

    def on_train_end(self, args, state, control, **kwargs):
        self.progress(f"{self.stage} step {state.global_step}/{state.max_steps}: done")


@dataclass(frozen=True)
class Checkpointing:
    """Where a training stage keeps resumable checkpoints, and every how many optimizer steps it saves one."""

    directory: Path
    every_steps: int


def trainer_args(
    cls, out_dir: Path, section, device: str, bf16: bool, seed: int, checkpointing: Checkpointing | None = None, **extra
):
    """TRL config objects with the settings every stage shares (no hub, CPU-safe); with ``checkpointing``,
    the trainer saves a resumable checkpoint (weights, optimizer, scheduler, RNG) every N steps."""
    saving = (
        {"save_strategy": "steps", "save_steps": checkpointing.every_steps, "save_total_limit": 1}
        if checkpointing
        else {"save_strategy": "no"}
    )
    return cls(
        output_dir=str(checkpointing.directory if checkpointing else out_dir),
        **saving,
        num_train_epochs=section.epochs,
        per_device_train_batch_size=section.batch_size,
        learning_rate=section.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        logging_steps=10,
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


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a Trainer checkpoint directory (``checkpoint-<step>``) was saved at."""
    return int(checkpoint.name.rsplit("-", 1)[-1])


def last_complete_checkpoint(directory: Path, progress: Callable[[str], None] = print) -> Path | None:
    """The newest checkpoint a killed run left intact. The Trainer writes ``trainer_state.json`` after the
    weights, optimizer and RNG state, so a checkpoint whose state file is missing or unreadable was cut off
    mid-save: it is removed, and the one before it is used."""
    if not directory.is_dir():
        return None
    found = sorted(directory.glob("checkpoint-*"), key=checkpoint_step, reverse=True)
    for checkpoint in found:
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            return checkpoint
        except (OSError, ValueError):
            progress(f"removing incomplete checkpoint {checkpoint}")
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def fit(trainer, checkpointing: Checkpointing | None, progress: Callable[[str], None] = print):
    """``trainer.train()``, resuming from the newest complete checkpoint in ``checkpointing.directory`` if a
    previous attempt left one (killed worker, OOM, lost node). Returns (train output, step resumed from or 0)."""
    last = last_complete_checkpoint(checkpointing.directory, progress) if checkpointing else None
    if last:
        progress(f"resuming from {last}")
    trainer.remove_callback(PrinterCallback)  # ProgressCallback already reports each log line once
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    return result, checkpoint_step(last) if last else 0
