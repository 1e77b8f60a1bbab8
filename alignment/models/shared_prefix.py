"""Answers that share a prompt, put through the model with the prompt computed once.

With SmolLM2's chat template the system prompt and the question are most of a short answer's tokens, and TRL
computes them once per answer: twice for a reward-model pair, ``num_generations`` times for an RLOO or GRPO group.
Here the answers sharing a prompt are one sequence: the shared tokens, then each answer, each answer's positions
continuing from the shared part and a mask that keeps it from seeing the other answers. Each answer then has the
same hidden states as alone (``tests/test_shared_prefix.py``), from fewer tokens.

- ``SharedPrefixRewardTrainer``: a pair's score is read where each answer's last token is, as TRL reads it at the
  last non-padding token. Tokens seen (the Trainer's ``num_input_tokens_seen`` and TRL's ``num_tokens``) still count
  a pair's two sequences whole, as TRL counts them: the work done for the user, however it is computed.
- ``SharedPromptTrainer``: RLOO's and GRPO's log-probabilities of their sampled completions (the loss's, the
  reference's and the old policy's), through TRL's own fused LM head given the labels pre-shifted.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from transformers.modeling_outputs import SequenceClassifierOutput
from trl import RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

PACKED = ("pair_ids", "pair_position_ids", "pair_mask", "chosen_index", "rejected_index")
PREFIX, CHOSEN, REJECTED = 0, 1, 2  # a packed pair's segments; later segments are an RLOO or GRPO group's answers
PADDING = 1 << 30  # a padding token's segment


def _padded(values: list[list[int]], length: int, fill: int, device: torch.device | None = None) -> torch.Tensor:
    """Rows of ints right-padded with ``fill`` to ``length``, as one tensor."""
    return torch.tensor([v + [fill] * (length - len(v)) for v in values], device=device)


def custom_mask_attention(model: torch.nn.Module) -> str | None:
    """The model's attention implementation where it takes a custom 4D mask (sdpa, eager), else None."""
    attention = getattr(model.config, "_attn_implementation", None)
    return attention if attention in ("sdpa", "eager") else None


def model_mask(mask: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """A boolean 4D mask as ``model``'s attention takes it: as is for sdpa; for eager, which adds its mask, 0 where
    seen and the dtype's minimum elsewhere."""
    if custom_mask_attention(model) != "eager":
        return mask
    dtype = next(model.parameters()).dtype
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


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
        return batch | {
            "pair_ids": _padded(rows, length, self.pad_token_id),
            "pair_position_ids": _padded(positions, length, 0),
            "pair_mask": segment_mask(_padded(kinds, length, PADDING)),
            "chosen_index": torch.tensor(chosen_index),
            "rejected_index": torch.tensor(rejected_index),
        }


class _PackedScorer:
    """The reward model called on packed pairs, answering as TRL's two-sequence call does: ``logits`` of shape
    ``(2 * pairs, 1)``, the chosen answers' scores then the rejected ones'. The score head's output at every position
    is caught by a forward hook, so the call goes through the (possibly distributed) model's own forward."""

    def __init__(
        self, model: torch.nn.Module, classifier: torch.nn.Module, head: torch.nn.Module, packed: dict
    ) -> None:
        self.model, self.classifier, self.head, self.packed = model, classifier, head, packed

    def __call__(self, **_: object) -> SequenceClassifierOutput:
        caught: list[torch.Tensor] = []
        handle = self.head.register_forward_hook(lambda module, args, out: caught.append(out))
        try:
            self.model(
                input_ids=self.packed["pair_ids"],
                attention_mask=model_mask(self.packed["pair_mask"], self.classifier),
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
        self._classifier = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._head = getattr(self._classifier, "score", None)
        self.packs_pairs = self._head is not None and custom_mask_attention(self._classifier) is not None
        if self.packs_pairs and isinstance(self.data_collator, DataCollatorForPreference):
            self.data_collator = SharedPrefixCollator(self.data_collator.pad_token_id, self.args.pad_to_multiple_of)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "pair_ids" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        packed = {key: inputs.pop(key) for key in PACKED}
        scorer = _PackedScorer(model, self._classifier, self._head, packed)
        return super().compute_loss(scorer, inputs, return_outputs, num_items_in_batch)


def segment_mask(kind: torch.Tensor) -> torch.Tensor:
    """``(rows, 1, length, length)``, True where a token may attend: causal, to its own segment and to the shared
    segment (``PREFIX``); a padding token (``PADDING``) only to itself, so no row is all masked."""
    length = kind.size(1)
    causal = torch.ones(length, length, dtype=torch.bool, device=kind.device).tril()
    same = kind[:, :, None] == kind[:, None, :]
    sees = causal & (same | (kind[:, None, :] == PREFIX)) & (kind[:, :, None] != PADDING)
    return (sees | torch.eye(length, dtype=torch.bool, device=kind.device))[:, None]


@dataclass(frozen=True)
class PromptGroups:
    """Rows of TRL's (left-padded prompt, right-padded completion) batch packed one sequence per distinct prompt:
    the prompt but its last token, then for each completion its prompt's last token and the completion. Each
    segment's tokens keep the positions they have in TRL's row, and the labels are pre-shifted (a position's label is
    the token its hidden state predicts), so TRL's fused head scores each completion token exactly once."""

    input_ids: torch.Tensor  # (groups, length)
    position_ids: torch.Tensor
    kind: torch.Tensor  # PREFIX the shared prompt, 1.. each completion's segment, PADDING after
    shift_labels: torch.Tensor  # -100 where nothing is scored
    source: torch.Tensor  # (rows, completion length, 2): the (group, position) each completion token is scored at
    scored: torch.Tensor  # (rows, completion length): which completion tokens are scored (the attention mask's)

    @classmethod
    def pack(cls, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion: int, pad: int) -> PromptGroups:
        prompt_length = input_ids.size(1) - completion
        groups: dict[tuple[int, ...], list[int]] = {}
        for row in range(input_ids.size(0)):
            prompt = input_ids[row, :prompt_length][attention_mask[row, :prompt_length].bool()]
            groups.setdefault(tuple(prompt.tolist()), []).append(row)
        ids, positions, kinds, labels = [], [], [], []
        source = torch.zeros(input_ids.size(0), completion, 2, dtype=torch.long)
        scored = attention_mask[:, prompt_length:].bool().cpu()
        for g, (prompt, rows) in enumerate(groups.items()):
            n = len(prompt)
            ids_g, pos_g = list(prompt[:-1]), list(range(prompt_length - n, prompt_length - 1))
            kind_g, label_g = [PREFIX] * (n - 1), [-100] * (n - 1)
            for segment, row in enumerate(rows, start=1):
                answer = input_ids[row, prompt_length:][scored[row]].tolist()
                start = len(ids_g)
                ids_g += [prompt[-1], *answer]
                pos_g += range(prompt_length - 1, prompt_length + len(answer))
                kind_g += [segment] * (len(answer) + 1)
                label_g += [*answer, -100]
                source[row, : len(answer), 0] = g
                source[row, : len(answer), 1] = torch.arange(start, start + len(answer))
            ids.append(ids_g)
            positions.append(pos_g)
            kinds.append(kind_g)
            labels.append(label_g)
        length, device = max(map(len, ids)), input_ids.device
        return cls(
            _padded(ids, length, pad, device),
            _padded(positions, length, 0, device),
            _padded(kinds, length, PADDING, device),
            _padded(labels, length, -100, device),
            source.to(input_ids.device),
            scored.to(input_ids.device),
        )

    def unpack(self, per_position: torch.Tensor) -> torch.Tensor:
        """A ``(groups, length)`` per-position value back in TRL's ``(rows, completion length)`` layout (0 where no
        completion token is)."""
        values = per_position[self.source[..., 0], self.source[..., 1]]
        return values.masked_fill(~self.scored, 0)


class SharedPromptTrainer:
    """A mixin for TRL's RLOOTrainer and GRPOTrainer: the completions sampled for one prompt are scored as one
    sequence with the prompt computed once (``PromptGroups``), through the model's own forward and TRL's fused head.
    Multimodal batches, MoE auxiliary losses, and models whose attention cannot take a custom mask (flash attention)
    are scored as TRL scores them."""

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False, **kwargs
    ):
        unwrapped = self._unwrapped(model)
        if (
            custom_mask_attention(unwrapped) is None
            or kwargs.get("compute_aux_loss")
            or any(v is not None for k, v in kwargs.items() if k != "compute_aux_loss")
        ):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, **kwargs
            )
        pad = getattr(self.processing_class, "pad_token_id", None) or 0
        batch_size = batch_size or input_ids.size(0)  # rows per forward, as TRL chunks them to bound memory
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            rows = slice(start, start + batch_size)
            groups = PromptGroups.pack(input_ids[rows], attention_mask[rows], logits_to_keep, pad)
            with self.accelerator.autocast():
                out = model(
                    input_ids=groups.input_ids,
                    attention_mask=model_mask(segment_mask(groups.kind), unwrapped),
                    position_ids=groups.position_ids,
                    shift_labels=groups.shift_labels,
                    fused_lm_head=True,
                )
            logps.append(groups.unpack(out.log_probs))
            if compute_entropy:
                entropies.append(groups.unpack(out.entropy))
        return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None

    def _unwrapped(self, model: torch.nn.Module) -> torch.nn.Module:
        """``accelerator.unwrap_model(model)``, once per model: it walks the model's modules on every call, and the
        loss, the reference and the old policy each score through here every step."""
        cache = self.__dict__.setdefault("_unwrapped_models", weakref.WeakKeyDictionary())
        if model not in cache:
            cache[model] = self.accelerator.unwrap_model(model)
        return cache[model]


def sharing_prompts(trainer_cls: type) -> type:
    """TRL's ``trainer_cls`` (RLOOTrainer or GRPOTrainer) scoring each prompt's completions with the prompt computed
    once (``SharedPromptTrainer``)."""
    return type(f"SharedPrompt{trainer_cls.__name__}", (SharedPromptTrainer, trainer_cls), {})
