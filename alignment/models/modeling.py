"""Loading models and tokenizers, LoRA configs, TRL trainer arguments, and running a Trainer with progress
events and resume from the last checkpoint."""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PrinterCallback,
    TrainerCallback,
)

from alignment.config.model import REMOTE_CODE_VARIABLE, ModelConfig, looks_local
from alignment.config.training import LoraSettings, TrainingSection
from alignment.core.checkpoints import checkpoint_step, last_complete_checkpoint
from alignment.core.compute import any_process
from alignment.core.context import TrainingRun
from alignment.models.activation_memory import decide_checkpointing
from alignment.models.adapter_switch import quick_disable_adapter
from alignment.models.fused_lm_head import compact_fused_lm_head
from alignment.models.refs import BaseRef

log = logging.getLogger(__name__)


def load_tokenizer(base: BaseRef | str | Path):
    """The base model's tokenizer, ready for chat: its chat template (or the configured one), a pad token (EOS
    where it has none) and left padding for batched generation. A tokenizer without a chat template is an
    error naming the model."""
    ref = base if isinstance(base, BaseRef) else BaseRef(str(base))
    options = {k: v for k, v in ref.options.items() if k in ("revision", "trust_remote_code")}
    try:
        tok = AutoTokenizer.from_pretrained(ref.path, **options)
    except (OSError, ValueError, TypeError) as exc:  # transformers' several-line "Couldn't instantiate the backend"
        detail = " ".join(str(exc).split())
        raise ValueError(
            f"{ref.path}: no usable tokenizer (save it with the model: tokenizer.save_pretrained(DIR) writes "
            f"tokenizer.json and tokenizer_config.json): {detail}"
        ) from None
    if ref.template():
        tok.chat_template = ref.template()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if tok.chat_template is None:
        raise ValueError(
            f"{ref.path}: the tokenizer has no chat template; set model.chat_template (a template or a .jinja file)"
        )
    return tok


def pretrained_options(ref: BaseRef) -> dict:
    """``from_pretrained`` keyword arguments: the configured ones, the dtype name as a torch dtype."""
    options = {"dtype": "float32"} | ref.options
    if options["dtype"] != "auto":
        options["dtype"] = getattr(torch, options["dtype"])
    return options


def check_base(cfg: ModelConfig) -> None:
    """Fail early and clearly if the configured base is not a causal LM or has no usable chat template (a GGUF
    file: that it exists, is GGUF and holds a causal LM; its tokenizer is checked when it is dequantized)."""
    if cfg.gguf_file is not None:
        from alignment.models.gguf import check_gguf

        check_gguf(cfg)
        return
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if looks_local(cfg.name_or_path) and not Path(cfg.name_or_path).expanduser().is_dir():
        raise ValueError(f"model.name_or_path {cfg.name_or_path!r}: no such directory")
    if cfg.trust_remote_code:
        return  # its config and tokenizer may be code: a check never runs it (the base stage loads it, with consent)
    try:
        config = AutoConfig.from_pretrained(cfg.name_or_path, revision=cfg.revision, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        if "trust_remote_code" in str(exc):
            raise ValueError(
                f"model.name_or_path {cfg.name_or_path!r} needs its own Python code to load: set "
                f"model.trust_remote_code: true, and {REMOTE_CODE_VARIABLE}=1 where it runs, if you trust it"
            ) from None
        hint = ""
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            hint = (
                " (the hub is off: HF_HUB_OFFLINE is set, by default by this tool, so only local directories and "
                "the hub cache load; set HF_HUB_OFFLINE=0 to download from the hub)"
            )
        detail = " ".join(str(exc).split())  # one line
        raise ValueError(f"model.name_or_path {cfg.name_or_path!r}: not a loadable model{hint}: {detail}") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(f"model.name_or_path {cfg.name_or_path!r}: {config.model_type!r} is not a causal LM")
    load_tokenizer(BaseRef(cfg.name_or_path, cfg.load_options(), cfg.chat_template))


def load_causal_lm(base: BaseRef | str | Path, adapters: Sequence[Path] = (), device: str = "cpu") -> PreTrainedModel:
    """The base causal LM with each LoRA adapter merged in, in order (base -> SFT -> policy)."""
    ref = base if isinstance(base, BaseRef) else BaseRef(str(base))
    model = AutoModelForCausalLM.from_pretrained(ref.path, **pretrained_options(ref))
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter), autocast_adapter_dtype=False).merge_and_unload()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = load_tokenizer(ref).pad_token_id
    return model.to(device).eval()


def reward_backbone(base: BaseRef | str | Path) -> PreTrainedModel:
    """The base as a one-output sequence classifier (a fresh score head), its pad token set for batching."""
    ref = base if isinstance(base, BaseRef) else BaseRef(str(base))
    # transformers reports the fresh score head as MISSING in a LOAD REPORT block; that head is what the reward stage
    # trains, so the report is held back and anything else it would have said is logged here. Raising that logger's
    # level also switches on transformers' tensor-parallel plan check (it runs only when the level is WARNING or
    # above), which then warns that no layer was sharded: no tensor parallelism is used here, so it is held back too.
    quiet = [logging.getLogger(f"transformers.{name}") for name in ("modeling_utils", "distributed.tensor_parallel")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            ref.path, num_labels=1, output_loading_info=True, **pretrained_options(ref)
        )
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith("score.")]
    other = {"missing": missing, "unexpected": list(info.get("unexpected_keys", ()))}
    other["mismatched"] = list(info.get("mismatched_keys", ()))
    if any(other.values()):
        log.warning("loading %s as a reward model: %s", ref.path, {k: v for k, v in other.items() if v})
    model.config.pad_token_id = load_tokenizer(ref).pad_token_id
    return model


def load_reward_model(base: BaseRef | str | Path, adapter: Path, device: str = "cpu") -> PreTrainedModel:
    """The trained reward model: base weights with its LoRA and trained score head merged in."""
    model = PeftModel.from_pretrained(reward_backbone(base), str(adapter), autocast_adapter_dtype=False)
    return model.merge_and_unload().to(device).eval()


def lora_config(settings: LoraSettings, task_type: str, **managed) -> LoraConfig:
    """A PEFT LoRA config from the section's LoRA settings (names one to one)."""
    return LoraConfig(**settings.model_dump(), task_type=task_type, **managed)


def adapters_in_base_dtype(model, section: TrainingSection) -> None:
    """With ``section.autocast_adapter_dtype`` off, cast the trainable adapter weights (PEFT upcast them to
    float32) to the frozen base weights' dtype, before the optimizer is built."""
    if section.autocast_adapter_dtype:
        return
    frozen = next((p.dtype for p in model.parameters() if not p.requires_grad), torch.float32)
    for param in model.parameters():
        if param.requires_grad and param.dtype != frozen:
            param.data = param.data.to(frozen)


def trainer_args(cls, section: TrainingSection, run: TrainingRun, **managed):
    """The TRL config object ``cls`` of a stage: the section's TRL arguments (pass-through included) plus what
    the pipeline sets: where checkpoints go (a resumable checkpoint every N steps with ``run.checkpointing``),
    device, precision, seed, and no console progress bar (progress goes out as events). Every trainer built with
    them gets TRL's fused LM head compact on a CPU too (``compact_fused_lm_head``)."""
    compact_fused_lm_head()  # TRL's fused LM head projects only the scored positions on a CPU too
    ckpt = run.checkpointing
    saving = (
        {"save_strategy": "steps", "save_steps": ckpt.every_steps, "save_total_limit": 1}
        if ckpt
        else {"save_strategy": "no"}
    )
    return cls(
        output_dir=str(ckpt.directory if ckpt else run.out_dir / "trainer"),
        **saving,
        **section.trainer_arguments(),
        bf16=run.device.bf16,
        use_cpu=run.device.name == "cpu",
        **({"ddp_backend": "gloo"} if run.device.name == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1 else {}),
        seed=run.seed,
        data_seed=run.seed,
        **{"disable_tqdm": True, "dataloader_num_workers": 0} | managed,
    )


class ProgressCallback(TrainerCallback):
    """Trainer log records as progress events: step, total steps, loss and the other logged values."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            logs = dict(logs)
            loss = logs.pop("loss", None)
            self.run.report(step=state.global_step, total=state.max_steps, loss=loss, logs=logs)

    def on_train_end(self, args, state, control, **kwargs):
        self.run.report("done", step=state.global_step, total=state.max_steps)


class NonFiniteTraining(FloatingPointError):
    """Training ended with a non-finite loss or non-finite trainable weights: nothing is stored."""


def check_finite(model, loss: float, stage: str) -> None:
    """Refuse a trained model whose loss or trainable weights are NaN or infinite (e.g. a too high learning
    rate), so it is never stored and reused."""
    bad = [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if bad or not math.isfinite(loss):
        tensors = f" and non-finite values in {len(bad)} trainable tensors (first: {bad[0]})" if bad else ""
        raise NonFiniteTraining(
            f"{stage}: training ended with loss {loss}{tensors}; nothing is stored. "
            "Lower the learning rate or check the data."
        )


def fit(trainer, run: TrainingRun, section: TrainingSection) -> dict:
    """``trainer.train()``, resuming from the newest complete checkpoint a previous attempt of this artifact
    left (killed worker, OOM, lost node), then the trained adapter saved as ``run.out_dir / "adapter"``. Logs
    an integration wrote under the output directory (e.g. TensorBoard's ``runs/``) are kept as ``logs/``.
    Returns the metrics every training stage records: final training loss, steps, step resumed from, the
    number of processes that trained (``compute.num_processes``) and activation checkpointing (``auto``'s decision
    and its estimates). The section's adapter dtype is applied first (``adapters_in_base_dtype``), and ``auto``
    activation checkpointing is decided (``decide_checkpointing``)."""
    adapters_in_base_dtype(trainer.model, section)
    quick_disable_adapter(trainer.accelerator.unwrap_model(trainer.model))  # the reference, without model walks
    decision = None
    fsdp_checkpoints = bool((trainer.args.fsdp_config or {}).get("activation_checkpointing"))
    if (
        section.activation_checkpointing == "auto"
        and not trainer.args.activation_checkpointing
        and not fsdp_checkpoints
    ):
        decision = decide_checkpointing(
            trainer.model, section, run.device.name, run.device.bf16, trainer.train_dataset, trainer.processing_class
        )
        if any_process(decision.activation_checkpointing, trainer.args.device):  # every rank alike, or they hang
            trainer.args.activation_checkpointing = trainer.args.gradient_checkpointing = True  # train() enables it
            decision = replace(decision, activation_checkpointing=True)
    last = last_complete_checkpoint(run.checkpointing.directory) if run.checkpointing else None
    if last:
        run.report(f"resuming from {last}")
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ProgressCallback(run))
    for callback in run.callbacks:
        trainer.add_callback(callback)
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    check_finite(trainer.model, result.training_loss, run.stage)
    if run.main:  # the other launched processes trained the same weights; one writes them
        logs = Path(trainer.args.output_dir) / "runs"
        if logs.is_dir():
            shutil.copytree(logs, run.out_dir / "logs", dirs_exist_ok=True)
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(run.out_dir / "adapter")
    return {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "resumed_from_step": checkpoint_step(last) if last else 0,
        "processes": trainer.args.world_size,
        "activation_checkpointing": decision.metrics() if decision else trainer.args.activation_checkpointing,
    }
