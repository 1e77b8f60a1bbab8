"""A model's hidden state at the end of a chat prompt: what it holds about a question before it writes a word."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from alignment.models.generation import chat_prompts


def layer_count(model: PreTrainedModel) -> int:
    """The number of transformer layers (hidden states are numbered 0, the embeddings, to this)."""
    return int(model.config.num_hidden_layers)


@torch.no_grad()
def prompt_hidden_states(
    model: PreTrainedModel, tok, questions: list[str], layers: Sequence[int], batch_size: int = 64
) -> np.ndarray:
    """Float32 array ``[question, layer, hidden]``: the hidden state after each of ``layers`` (0 = embeddings, L =
    the last layer's output) at the prompt's last token, the one the answer's first token is predicted from. Prompts
    are rendered with the chat template and batched by length (left padding, with the position ids a lone prompt
    would get)."""
    prompts = chat_prompts(tok, questions)
    lengths = [len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    out = np.zeros((len(prompts), len(layers), model.config.hidden_size), dtype=np.float32)
    side, tok.padding_side = tok.padding_side, "left"
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            enc = tok([prompts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
            mask = enc["attention_mask"].to(model.device)
            positions = (mask.cumsum(1) - 1).clamp(min=0)
            hidden = model.base_model(  # the transformer without its LM head: no logits over the vocabulary
                input_ids=enc["input_ids"].to(model.device),
                attention_mask=mask,
                position_ids=positions,
                output_hidden_states=True,
            ).hidden_states
            out[rows] = torch.stack([hidden[layer][:, -1].float() for layer in layers], 1).cpu().numpy()
    finally:
        tok.padding_side = side
    return out
