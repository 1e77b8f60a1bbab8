"""A preference pair scored with its shared prefix computed once: TRL's RewardTrainer, packed.

A pair's chosen and rejected sequences share their prompt (with SmolLM2's chat template, the system prompt and the
question are most of both). TRL puts each pair through the reward model as two sequences, so the prompt is computed
twice. Here each pair is one sequence: the tokens both share, then the rest of the chosen one, then the rest of the
rejected one, with the rejected tokens' positions continuing from the shared part and a mask that keeps them from
seeing the chosen ones. Each answer's score is read where its own last token is, as TRL reads it at the last
non-padding token: the same hidden states (``tests/test_shared_prefix.py``), fewer tokens.

Tokens seen (the Trainer's ``num_input_tokens_seen`` and TRL's ``num_tokens``) still count a pair's two sequences
whole, as TRL counts them: the work done for the user, however it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import SequenceClassifierOutput
from trl import RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

PACKED = ("pair_ids", "pair_position_ids", "pair_mask", "chosen_index", "rejected_index")
PREFIX, CHOSEN, REJECTED, PADDING = 0, 1, 2, 3  # what each packed token is


def shared_prefix(chosen: list[int], rejected: list[int]) -> int:
    """How many leading tokens the two sequences share, leaving each at least its last token of its own."""
    n = 0
    limit = min(len(chosen), len(rejected)) - 1
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    return n


@dataclass
class SharedPrefixCollator(DataCollatorForPreference):
    """TRL's preference collator (``input_ids`` and ``attention_mask``: a pair's two sequences, padded, which the
    Trainer counts as tokens seen), plus each pair packed: ``pair_ids`` (shared prefix, chosen rest, rejected rest,
    right-padded), ``pair_position_ids``, ``pair_mask`` (``(batch, 1, length, length)``, True where a token may
    attend: causal, and the rejected rest never sees the chosen rest) and the two score positions."""

    def torch_call(self, examples: list[dict]) -> dict:
        batch = super().torch_call(examples)
        rows, positions, kinds, chosen_index, rejected_index = [], [], [], [], []
        for example in examples:
            chosen, rejected = list(example["chosen_ids"]), list(example["rejected_ids"])
            p = shared_prefix(chosen, rejected)
            rows.append(chosen + rejected[p:])
            positions.append(list(range(len(chosen))) + list(range(p, len(rejected))))
            kinds.append([PREFIX] * p + [CHOSEN] * (len(chosen) - p) + [REJECTED] * (len(rejected) - p))
            chosen_index.append(len(chosen) - 1)
            rejected_index.append(len(rows[-1]) - 1)
        length = max(map(len, rows))
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of

        def padded(values: list[list[int]], fill: int) -> torch.Tensor:
            return torch.tensor([v + [fill] * (length - len(v)) for v in values])

        kind = padded(kinds, PADDING)
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        same = kind[:, :, None] == kind[:, None, :]
        sees = causal & (same | (kind[:, None, :] == PREFIX)) & (kind[:, :, None] != PADDING)
        sees |= torch.eye(length, dtype=torch.bool)  # padding attends to itself: no row all masked
        return batch | {
            "pair_ids": padded(rows, self.pad_token_id),
            "pair_position_ids": padded(positions, 0),
            "pair_mask": sees[:, None],
            "chosen_index": torch.tensor(chosen_index),
            "rejected_index": torch.tensor(rejected_index),
        }


class _PackedScorer:
    """The reward model called on packed pairs, answering as TRL's two-sequence call does: ``logits`` of shape
    ``(2 * pairs, 1)``, the chosen answers' scores then the rejected ones'. The score head's output at every position
    is caught by a forward hook, so the call goes through the (possibly distributed) model's own forward."""

    def __init__(self, model: torch.nn.Module, head: torch.nn.Module, packed: dict, eager: bool) -> None:
        self.model, self.head, self.packed, self.eager = model, head, packed, eager

    def __call__(self, **_: object) -> SequenceClassifierOutput:
        caught: list[torch.Tensor] = []
        handle = self.head.register_forward_hook(lambda module, args, out: caught.append(out))
        mask = self.packed["pair_mask"]
        if self.eager:  # eager attention adds its mask: 0 where seen, the dtype's minimum elsewhere
            dtype = next(self.model.parameters()).dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        try:
            self.model(
                input_ids=self.packed["pair_ids"],
                attention_mask=mask,
                position_ids=self.packed["pair_position_ids"],
                use_cache=False,
            )
        finally:
            handle.remove()
        scores = caught[-1].squeeze(-1)  # (pairs, length)
        chosen = scores.gather(1, self.packed["chosen_index"][:, None])
        rejected = scores.gather(1, self.packed["rejected_index"][:, None])
        return SequenceClassifierOutput(logits=torch.cat([chosen, rejected]))


class SharedPrefixRewardTrainer(RewardTrainer):
    """TRL's RewardTrainer (its loss, metrics and evaluation unchanged) putting each pair through the model once, its
    shared prefix computed once. Where the model's attention cannot take a custom mask (flash attention) or its score
    head is not ``score``, it trains as TRL's RewardTrainer does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        classifier = model.get_base_model() if hasattr(model, "get_base_model") else model
        attention = getattr(classifier.config, "_attn_implementation", None)
        self._head = getattr(classifier, "score", None)
        self._eager = attention == "eager"
        self.packs_pairs = self._head is not None and attention in ("sdpa", "eager")
        if self.packs_pairs and isinstance(self.data_collator, DataCollatorForPreference):
            self.data_collator = SharedPrefixCollator(self.data_collator.pad_token_id, self.args.pad_to_multiple_of)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "pair_ids" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        packed = {key: inputs.pop(key) for key in PACKED}
        scorer = _PackedScorer(model, self._head, packed, self._eager)
        return super().compute_loss(scorer, inputs, return_outputs, num_items_in_batch)
