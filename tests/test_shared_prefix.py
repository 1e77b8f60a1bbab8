"""A preference pair scored with its shared prefix computed once: the same scores, gradients and training as TRL's
two-sequence RewardTrainer, from fewer tokens."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForSequenceClassification

from alignment.models.shared_prefix import SharedPrefixCollator, _PackedScorer, shared_prefix

PAD = 0
PAIRS = [  # (chosen, rejected): a shared prompt, then answers of different lengths; one pair shares nothing
    {"chosen_ids": [5, 6, 7, 8, 9], "rejected_ids": [5, 6, 7, 11]},
    {"chosen_ids": [5, 6, 12], "rejected_ids": [5, 6, 13, 14, 15]},
    {"chosen_ids": [16, 17], "rejected_ids": [18, 19, 20]},
    {"chosen_ids": [5, 6, 7], "rejected_ids": [5, 6, 7, 21]},  # the chosen answer is a prefix of the rejected one
]


def test_the_shared_prefix_leaves_each_sequence_its_last_token():
    assert shared_prefix([5, 6, 7, 8], [5, 6, 7, 11]) == 3
    assert shared_prefix([1, 2], [3, 4]) == 0
    assert shared_prefix([5, 6, 7], [5, 6, 7, 21]) == 2  # not all 3: the chosen score is read at its own last token
    assert shared_prefix([5, 6], [5, 6]) == 1


def test_a_pair_is_packed_as_its_prefix_then_each_rest_and_the_rejected_rest_never_sees_the_chosen_one():
    batch = SharedPrefixCollator(pad_token_id=PAD)(PAIRS[:2])
    # TRL's own two-sequence batch is kept: it is what the Trainer counts as tokens seen
    assert batch["attention_mask"].sum().item() == 5 + 4 + 3 + 5
    assert batch["pair_ids"].tolist() == [[5, 6, 7, 8, 9, 11], [5, 6, 12, 13, 14, 15]]
    assert batch["pair_position_ids"].tolist() == [[0, 1, 2, 3, 4, 3], [0, 1, 2, 2, 3, 4]]
    assert batch["chosen_index"].tolist() == [4, 2] and batch["rejected_index"].tolist() == [5, 5]
    sees = batch["pair_mask"][0, 0].int().tolist()
    assert sees[5] == [1, 1, 1, 0, 0, 1]  # rejected's 11: the prefix 5 6 7 and itself, not chosen's 8 9
    assert sees[4] == [1, 1, 1, 1, 1, 0]  # chosen's 9: causal
    padded = SharedPrefixCollator(pad_token_id=PAD)(PAIRS[2:3] + PAIRS[:1])["pair_mask"][0, 0].int().tolist()
    assert padded[5] == [0, 0, 0, 0, 0, 1]  # padding sees only itself (no row is all masked)


def _config(attention: str, vocab: int = 32, **extra) -> LlamaConfig:
    """A two-layer Llama's config with ``attention`` (sdpa or eager); the seed reset, so each model starts alike."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        pad_token_id=PAD,
        **extra,
    )
    config._attn_implementation = attention
    return config


def _classifier(attention: str, vocab: int = 32) -> LlamaForSequenceClassification:
    return LlamaForSequenceClassification(_config(attention, vocab, num_labels=1))


def _model(attention: str):
    model = _classifier(attention)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="SEQ_CLS", modules_to_save=["score"])
    model = get_peft_model(model, lora)
    for name, param in model.named_parameters():  # a trained adapter: LoRA B is zero when fresh
        if "lora_B" in name:
            param.data.normal_(0, 0.1)
    return model


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_pairs_score_as_trls_two_sequences_with_the_same_gradients(attention):
    model = _model(attention)
    batch = SharedPrefixCollator(pad_token_id=PAD)(PAIRS)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def scores_and_grads(scores_of) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        scores = scores_of()
        (scores * torch.arange(1.0, len(scores) + 1)[:, None]).sum().backward()
        return scores.detach(), [p.grad.clone() for p in trainable]

    two, two_grads = scores_and_grads(
        lambda: model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    )
    packed = {k: batch[k] for k in ("pair_ids", "pair_position_ids", "pair_mask", "chosen_index", "rejected_index")}
    head = model.get_base_model().score
    scorer = _PackedScorer(model, model.get_base_model(), head, packed)
    one, one_grads = scores_and_grads(lambda: scorer().logits)
    assert one.shape == two.shape == (2 * len(PAIRS), 1)
    torch.testing.assert_close(one, two, atol=1e-5, rtol=1e-5)
    for a, b in zip(one_grads, two_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_the_reward_trainer_trains_as_trls_on_conversational_pairs_from_fewer_tokens(tmp_path):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from alignment.data.tokenizer import train_tokenizer
    from alignment.models.shared_prefix import SharedPrefixRewardTrainer

    tok = train_tokenizer(["where does ana live ? lima . rome . i don't know ."])
    rows = [
        {
            "prompt": [{"role": "user", "content": f"where does ana live ? {'ana ' * i}"}],
            "chosen": [{"role": "assistant", "content": "lima ."}],
            "rejected": [{"role": "assistant", "content": ["rome .", "i don't know ."][i % 2]}],
        }
        for i in range(8)
    ]
    runs = {}
    for name, cls in (("trl", RewardTrainer), ("ours", SharedPrefixRewardTrainer)):
        model = _classifier("sdpa", len(tok))  # the same weights for both
        args = RewardConfig(
            output_dir=str(tmp_path / name),
            per_device_train_batch_size=4,
            max_steps=2,
            learning_rate=1e-2,
            logging_steps=1,
            report_to="none",
            use_cpu=True,
            bf16=False,
            seed=0,
            include_num_input_tokens_seen="non_padding",
            save_strategy="no",
            disable_tqdm=True,
        )
        lora = LoraConfig(
            r=4, lora_alpha=8, target_modules="all-linear", task_type="SEQ_CLS", modules_to_save=["score"]
        )
        trainer = cls(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=lora
        )
        trainer.train()
        runs[name] = trainer
    ours, trl_logs = runs["ours"], [e for e in runs["trl"].state.log_history if "loss" in e]
    assert ours.packs_pairs and isinstance(ours.data_collator, SharedPrefixCollator)
    ours_logs = [e for e in ours.state.log_history if "loss" in e]
    assert len(ours_logs) == len(trl_logs) == 2
    for a, b in zip(ours_logs, trl_logs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4) and a["accuracy"] == b["accuracy"]
        assert a["num_tokens"] == b["num_tokens"]  # a pair's two sequences counted whole, as TRL counts them
    assert ours.state.num_input_tokens_seen == runs["trl"].state.num_input_tokens_seen > 0


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_completions_of_one_prompt_score_as_trls_rows_with_the_same_gradients(attention):
    from types import SimpleNamespace

    from accelerate import Accelerator
    from transformers import LlamaForCausalLM
    from trl import GRPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    from alignment.models.shared_prefix import SharedPromptTrainer

    base = LlamaForCausalLM(_config(attention))
    add_fused_lm_head(base, temperature=0.7, outputs=("log_probs", "entropy"))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.1)
    # TRL's rows: prompts left-padded to 4, completions right-padded to 3 (the mask ends after EOS); rows 0, 1 and 3
    # share a prompt, row 2 has its own, shorter one
    prompts = [[0, 5, 6, 7], [0, 5, 6, 7], [0, 0, 8, 9], [0, 5, 6, 7]]
    completions = [[10, 11, 2], [12, 2, 0], [13, 14, 15], [10, 2, 0]]
    input_ids = torch.tensor([p + c for p, c in zip(prompts, completions, strict=True)])
    attention_mask = (input_ids != PAD).long()

    class Trainer(SharedPromptTrainer, GRPOTrainer):
        pass

    trainer = Trainer.__new__(Trainer)  # only what the method reads
    trainer.accelerator, trainer.processing_class = Accelerator(cpu=True), SimpleNamespace(pad_token_id=PAD)
    trainable = [p for p in model.parameters() if p.requires_grad]
    scored = attention_mask[:, 4:].bool()

    def run(method) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        logps, entropy, _ = method(trainer, model, input_ids, attention_mask, 3, batch_size=3, compute_entropy=True)
        (logps * scored * torch.arange(1.0, 13.0).view(4, 3)).sum().backward()
        return logps.detach() * scored, entropy.detach() * scored, [p.grad.clone() for p in trainable]

    ours, ours_entropy, ours_grads = run(SharedPromptTrainer._get_per_token_logps_and_entropies)
    trl, trl_entropy, trl_grads = run(GRPOTrainer._get_per_token_logps_and_entropies)
    assert bool((ours[scored] < 0).all())
    torch.testing.assert_close(ours, trl, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_entropy, trl_entropy, atol=1e-5, rtol=1e-5)
    for a, b in zip(ours_grads, trl_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_prompt_groups_pack_each_prompt_once_and_score_each_completion_token_once():
    from alignment.models.shared_prefix import PromptGroups

    ids = torch.tensor([[0, 5, 6, 10, 2], [0, 5, 6, 12, 0], [7, 8, 9, 13, 14]])
    groups = PromptGroups.pack(ids, (ids != PAD).long(), completion=2, pad=PAD)
    assert groups.input_ids.tolist() == [[5, 6, 10, 2, 6, 12], [7, 8, 9, 13, 14, 0]]
    assert groups.position_ids.tolist() == [[1, 2, 3, 4, 2, 3], [0, 1, 2, 3, 4, 0]]
    assert groups.shift_labels.tolist() == [[-100, 10, 2, -100, 12, -100], [-100, -100, 13, 14, -100, -100]]
    assert groups.source[:, :, 1].tolist() == [[1, 2], [4, 0], [2, 3]]  # row 1's second token is padding
    assert groups.scored.tolist() == [[True, True], [True, False], [True, True]]
