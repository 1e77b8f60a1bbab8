"""The tiny base model: a small Llama-style decoder pretrained from scratch on the world's corpus."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from alignment.config import TinyBaseConfig

CHINCHILLA_TOKENS_PER_PARAM = 20.0


def build_model(cfg: TinyBaseConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A freshly initialised Llama-style decoder sized by ``cfg``, with tied input/output embeddings.

    Tied embeddings matter for the world: the output softmax pushes every never-seen token's row the
    same way, so unseen entity names end up alike, and unlike every name seen in pretraining.
    """
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.seq_len * 2,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def token_stream(tokenizer: PreTrainedTokenizerFast, documents: list[str]) -> torch.Tensor:
    """All documents as one token stream, each ended by the EOS token."""
    ids: list[int] = []
    for enc in tokenizer(documents, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def pretrain(
    cfg: TinyBaseConfig,
    tokenizer: PreTrainedTokenizerFast,
    documents: list[str],
    out_dir: Path,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> dict[str, float]:
    """Pretrain the tiny base on random windows of the corpus and save it with ``save_pretrained``."""
    torch.manual_seed(seed)
    model = build_model(cfg, tokenizer).to(device)
    stream = token_stream(tokenizer, documents)
    if len(stream) <= cfg.seq_len:
        raise ValueError(f"pretraining corpus has {len(stream)} tokens, fewer than model.tiny.seq_len={cfg.seq_len}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    start, loss_val = time.time(), float("nan")
    for step in range(cfg.steps):
        starts = torch.randint(0, len(stream) - cfg.seq_len, (cfg.batch_size,), generator=gen)
        batch = torch.stack([stream[s : s + cfg.seq_len] for s in starts.tolist()]).to(device)
        loss = model(input_ids=batch, labels=batch).loss  # the model shifts labels itself
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_val = loss.item()
        if step % 50 == 0 or step == cfg.steps - 1:
            progress(f"pretrain step {step + 1}/{cfg.steps} loss {loss_val:.3f} ({time.time() - start:.0f}s)")
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    tokens = cfg.steps * cfg.batch_size * cfg.seq_len
    return {
        "parameters": n_params,
        "training_tokens": tokens,
        "corpus_tokens": len(stream),
        "epochs_over_corpus": tokens / len(stream),
        "tokens_per_parameter": tokens / n_params,
        "chinchilla_tokens_per_parameter": CHINCHILLA_TOKENS_PER_PARAM,
        "final_loss": loss_val,
        "seconds": time.time() - start,
    }
