"""``activation_checkpointing: auto``: whether recomputing activations in the backward pass is worth its time for
this model, batch and process, decided when training starts.

Checkpointing keeps one hidden-state tensor per decoder layer instead of everything a layer's backward needs; TRL
turns it on by default. Off, a step keeps, per token and layer, about nine hidden-size tensors (norms, attention
projections and output, residuals), four intermediate-size ones (the gated MLP) and the key and value projections,
in the compute dtype, for the batch at the training data's longest sequence. ``auto`` leaves it off only where
those extra activations are under ``AUTO_SHARE`` of the memory the process already holds (the weights, and on a CPU
the runtime itself): a small model skips the recompute, a real one keeps about TRL's memory. Eager attention's
score matrices and fp32 norm copies under bf16 are not counted.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

AUTO_SHARE = 0.05


@dataclass(frozen=True)
class CheckpointingDecision:
    """What ``auto`` decided, and the two estimates it compared (recorded in the stage's metrics)."""

    activation_checkpointing: bool
    extra_activations_mib: float  # kept without checkpointing, beyond what checkpointing keeps, per step
    held_mib: float  # the process's memory when training starts

    def metrics(self) -> dict:
        return {"mode": "auto"} | asdict(self)


def extra_activation_bytes(config, tokens: int, dtype_bytes: int, lora_r: int = 0) -> int:
    """Bytes a step keeps without checkpointing beyond what checkpointing keeps (one hidden state per layer), for
    ``tokens`` tokens through a decoder with ``config``'s shape (a transformers config; LoRA adds the rank-sized
    intermediate of its seven adapted projections)."""
    hidden = config.hidden_size
    intermediate = getattr(config, "intermediate_size", None) or 4 * hidden
    heads = getattr(config, "num_attention_heads", 1) or 1
    kv = hidden * (getattr(config, "num_key_value_heads", None) or heads) // heads
    per_token_layer = 9 * hidden + 4 * intermediate + 2 * kv + 7 * lora_r
    return config.num_hidden_layers * tokens * per_token_layer * dtype_bytes


def held_bytes(device: str) -> int:
    """The memory this process holds now: the CUDA allocator's on a GPU, the resident set on a CPU."""
    if device == "cuda":
        return torch.cuda.memory_allocated()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def longest_sequence(dataset) -> int | None:
    """The longest sequence a tokenized TRL dataset puts through the model, in tokens: ``prompt_ids`` (DPO, KTO) plus
    its longest answer, or the longest of its other token columns (SFT's ``input_ids``, the reward model's
    ``chosen_ids``/``rejected_ids``); None for a dataset not yet tokenized (RLOO's and GRPO's prompts)."""
    import pyarrow.compute as pc

    columns = [c for c in getattr(dataset, "column_names", []) if c == "input_ids" or c.endswith("_ids")]
    if not columns or not len(dataset):
        return None

    def lengths(column: str):
        return pc.list_value_length(dataset.data.column(column))

    answers = [c for c in columns if c != "prompt_ids"]
    longest = lengths(answers[0]) if answers else None
    for column in answers[1:]:
        longest = pc.max_element_wise(longest, lengths(column))
    if "prompt_ids" in columns:
        longest = lengths("prompt_ids") if longest is None else pc.add(longest, lengths("prompt_ids"))
    return int(pc.max(longest).as_py())


def longest_prompt(dataset, tokenizer) -> int | None:
    """The longest prompt of a dataset of untokenized prompts (RLOO's, GRPO's), in tokens, as TRL's online trainers
    tokenize it: the tokenizer's chat template with the generation prompt for conversations, the text as is
    otherwise. None without a ``prompt`` column or a tokenizer (a multimodal processor, say)."""
    from transformers import PreTrainedTokenizerBase

    if "prompt" not in getattr(dataset, "column_names", []) or not len(dataset):
        return None
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        return None
    prompts = list(dataset["prompt"])
    if isinstance(prompts[0], list):  # conversations
        ids = tokenizer.apply_chat_template(prompts, add_generation_prompt=True, tokenize=True, return_dict=True)
    else:
        ids = tokenizer(text=prompts)
    return max(len(row) for row in ids["input_ids"])


def decide_checkpointing(
    model, section, device: str, bf16: bool, dataset=None, tokenizer=None
) -> CheckpointingDecision:
    """``auto``'s decision for ``model`` trained with ``section`` on ``device``: checkpointing unless the extra
    activations of one step (``per_device_train_batch_size`` examples, ``section.sequences_per_example`` sequences
    each, as long as the training data's longest sequence, within ``section.length_bound()``; for RLOO and GRPO, whose
    prompts TRL does not truncate, the longest prompt tokenized with ``tokenizer`` and ``max_completion_length``)
    stay under ``AUTO_SHARE`` of the memory held now; checkpointing where the model's config does not give its
    shape."""
    frozen = next((p for p in model.parameters() if not p.requires_grad), None)
    dtype_bytes = 2 if bf16 else (frozen.element_size() if frozen is not None else 4)
    longest = longest_sequence(dataset) if dataset is not None else None
    length = min(section.length_bound(), longest) if longest else section.length_bound()
    completion = getattr(section, "max_completion_length", None)
    if longest is None and completion is not None and dataset is not None:
        prompt = longest_prompt(dataset, tokenizer)
        length = prompt + completion if prompt is not None else length
    tokens = section.per_device_train_batch_size * section.sequences_per_example * length
    held = held_bytes(device)
    if not all(hasattr(model.config, k) for k in ("hidden_size", "num_hidden_layers")):
        return CheckpointingDecision(True, float("nan"), held / 2**20)  # a shape it cannot read: TRL's default
    extra = extra_activation_bytes(model.config, tokens, dtype_bytes, section.lora.r)
    return CheckpointingDecision(extra > AUTO_SHARE * held, extra / 2**20, held / 2**20)
