"""The tiny base model: a small Llama-style decoder pretrained from scratch on the world's corpus."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from alignment.config.model import ModelConfig, TinyBaseConfig
from alignment.core.context import StageContext, TrainingRun
from alignment.core.store import Artifact, file_sha256

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

CHINCHILLA_TOKENS_PER_PARAM = 20.0


def build_model(cfg: TinyBaseConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A freshly initialised Llama-style decoder sized by ``cfg``, with tied input/output embeddings.

    Tied embeddings matter for the world: the output softmax pushes every never-seen token's row the
    same way, so unseen entity names end up alike, and unlike every name seen in pretraining.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads,
        max_position_embeddings=cfg.seq_len * 2,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def token_stream(tokenizer: PreTrainedTokenizerFast, documents: list[str]) -> torch.Tensor:
    """All documents as one token stream, each ended by the EOS token."""
    import torch

    ids: list[int] = []
    for enc in tokenizer(documents, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def pretrain(cfg: TinyBaseConfig, tokenizer: PreTrainedTokenizerFast, documents: list[str], run: TrainingRun) -> dict:
    """Pretrain the tiny base on random windows of the corpus and save it with ``save_pretrained`` in
    ``run.out_dir / "model"``: AdamW, linear warmup, cosine decay to 10% of the peak learning rate. The RNGs
    were seeded when the stage picked its device (``StageContext.device``)."""
    import torch
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    model = build_model(cfg, tokenizer).to(run.device.name)
    stream = token_stream(tokenizer, documents)
    if len(stream) <= cfg.seq_len:
        raise ValueError(f"pretraining corpus has {len(stream)} tokens, fewer than model.tiny.seq_len={cfg.seq_len}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, cfg.warmup_steps, cfg.max_steps, min_lr_rate=0.1)
    gen = torch.Generator().manual_seed(run.seed)
    batch_size = cfg.per_device_train_batch_size
    model.train()
    start, loss_val = time.time(), float("nan")
    for step in range(1, cfg.max_steps + 1):
        starts = torch.randint(0, len(stream) - cfg.seq_len, (batch_size,), generator=gen)
        batch = torch.stack([stream[s : s + cfg.seq_len] for s in starts.tolist()]).to(run.device.name)
        loss = model(input_ids=batch, labels=batch).loss  # the model shifts labels itself
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_val = loss.item()
        if step % 25 == 0 or step == cfg.max_steps:
            run.report(step=step, total=cfg.max_steps, loss=loss_val)
    model.eval()
    model.save_pretrained(run.out_dir / "model")
    tokenizer.save_pretrained(run.out_dir / "model")
    n_params = sum(p.numel() for p in model.parameters())
    tokens = cfg.max_steps * batch_size * cfg.seq_len
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


def same_world(base: Artifact, world: Artifact) -> None:
    """A tiny base knows one world's vocabulary and facts: using it with another world's data is an error."""
    trained_on = base.manifest.get("inputs", {}).get("world.json")
    if trained_on and trained_on != "sha256:" + file_sha256(world.path / "world.json"):
        raise ValueError(
            f"base {base.id} was pretrained on another world than this config's ({world.id}); "
            "use the same world settings or pick a base artifact of this world"
        )


def base_stage(cfg: ModelConfig, ctx: StageContext, world: Artifact) -> Artifact:
    """The tiny base: a tokenizer and a small decoder pretrained on the world's corpus."""

    inputs = {n: "sha256:" + file_sha256(world.path / n) for n in ("pretrain.txt", "reference.txt", "world.json")}

    def fit(run: TrainingRun) -> dict:
        from alignment.data.tokenizer import train_tokenizer
        from alignment.data.world import tokenizer_texts

        tok = train_tokenizer(tokenizer_texts(world.path))
        docs = (world.path / "pretrain.txt").read_text().splitlines()
        return pretrain(cfg.tiny, tok, docs, run)

    return ctx.train("base", cfg.tiny.model_dump(mode="json"), inputs, fit, launchable=False)  # our own loop
