"""``activation_checkpointing: auto`` decides from the model's shape, the batch and the memory the process holds."""

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from alignment.config.dpo import DPOSection
from alignment.config.grpo import GRPOSection
from alignment.config.sft import SFTSection
from alignment.models import activation_memory
from alignment.models.activation_memory import decide_checkpointing, extra_activation_bytes

SMOLLM2 = SimpleNamespace(
    hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3, num_hidden_layers=30
)


def test_extra_activations_follow_the_shape():
    # per token and layer: 9 * 576 + 4 * 1536 + 2 * 192 (grouped key/value heads) + 7 * 16 (LoRA r 16) = 11,824
    assert extra_activation_bytes(SMOLLM2, tokens=1, dtype_bytes=4, lora_r=16) == 30 * 11_824 * 4
    # SmolLM2's SFT step in the bench (batch 8 x 128 tokens, fp32): about 1.4 GiB kept without checkpointing
    assert extra_activation_bytes(SMOLLM2, 8 * 128, 4, 16) / 2**20 == pytest.approx(1385.6, abs=0.1)
    grouped = SimpleNamespace(hidden_size=64, num_hidden_layers=2)  # no MLP width or heads given: 4x, one head
    assert extra_activation_bytes(grouped, 1, 2) == 2 * (9 * 64 + 4 * 256 + 2 * 64) * 2


def test_the_steps_tokens_count_pairs_and_the_sections_length_bound():
    assert SFTSection(max_length=100).length_bound() == 100
    assert SFTSection(max_length=None).length_bound() == 1024
    assert GRPOSection(max_completion_length=16).length_bound() == 128 + 16
    assert (SFTSection.sequences_per_example, DPOSection.sequences_per_example) == (1, 2)


@pytest.fixture
def tiny_lora():
    from peft import LoraConfig, get_peft_model

    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    return get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, target_modules="all-linear"))


def test_checkpointing_only_where_the_extra_activations_pass_five_percent_of_what_is_held(tiny_lora, monkeypatch):
    section = DPOSection(per_device_train_batch_size=4, max_length=10, lora={"r": 4})
    # 4 pairs x 2 sequences x 10 tokens x 2 layers x (9*32 + 4*64 + 2*32 + 7*4 = 636) x 4 bytes
    extra = 80 * 2 * 636 * 4
    monkeypatch.setattr(activation_memory, "held_bytes", lambda device: 20 * extra)  # exactly 5%: off
    off = decide_checkpointing(tiny_lora, section, "cpu", bf16=False)
    assert off.activation_checkpointing is False
    assert off.extra_activations_mib == pytest.approx(extra / 2**20)
    assert off.metrics() == {
        "mode": "auto",
        "activation_checkpointing": False,
        "extra_activations_mib": extra / 2**20,
        "held_mib": 20 * extra / 2**20,
    }
    monkeypatch.setattr(activation_memory, "held_bytes", lambda device: 20 * extra - 1)  # above 5%: on
    assert decide_checkpointing(tiny_lora, section, "cpu", bf16=False).activation_checkpointing is True
    # bf16 halves the activations: off again
    assert decide_checkpointing(tiny_lora, section, "cpu", bf16=True).activation_checkpointing is False


def test_a_shape_it_cannot_read_gets_trls_default(monkeypatch):
    model = torch.nn.Linear(2, 2)
    model.config = SimpleNamespace()
    monkeypatch.setattr(activation_memory, "held_bytes", lambda device: 2**30)
    assert decide_checkpointing(model, SFTSection(), "cpu", bf16=False).activation_checkpointing is True


def test_the_process_memory_is_read_on_a_cpu():
    assert activation_memory.held_bytes("cpu") > 50 * 2**20  # torch alone is larger


def test_auto_starts_off_in_the_trainer_arguments_and_true_or_false_pass_through():
    assert SFTSection().activation_checkpointing == "auto"
    assert SFTSection().trainer_arguments()["activation_checkpointing"] is False  # decided when training starts
    on = SFTSection(activation_checkpointing=True).trainer_arguments()
    assert on["activation_checkpointing"] is on["gradient_checkpointing"] is True
    with pytest.raises(ValueError, match="activation_checkpointing"):
        SFTSection(activation_checkpointing="sometimes")


def test_the_longest_sequence_is_read_from_the_tokenized_data():
    from datasets import Dataset

    from alignment.models.activation_memory import longest_sequence

    assert longest_sequence(Dataset.from_dict({"input_ids": [[1, 2, 3], [1]]})) == 3  # SFT
    pairs = {"prompt_ids": [[1, 2], [1]], "chosen_ids": [[3], [4, 5, 6]], "rejected_ids": [[7, 8, 9], [1]]}
    assert longest_sequence(Dataset.from_dict(pairs)) == 5  # DPO: the prompt and its longest answer
    assert longest_sequence(Dataset.from_dict({"chosen_ids": [[1, 2]], "rejected_ids": [[1, 2, 3, 4]]})) == 4
    assert longest_sequence(Dataset.from_dict({"prompt": ["a question"]})) is None  # RLOO's prompts: the bound


def test_the_decision_counts_the_datas_longest_sequence_within_the_bound(tiny_lora, monkeypatch):
    from datasets import Dataset

    monkeypatch.setattr(activation_memory, "held_bytes", lambda device: 2**30)
    section = SFTSection(per_device_train_batch_size=2, max_length=100, lora={"r": 4})
    per_token = 2 * (9 * 32 + 4 * 64 + 2 * 32 + 7 * 4) * 4  # two layers, fp32
    short = decide_checkpointing(tiny_lora, section, "cpu", False, Dataset.from_dict({"input_ids": [[1] * 30]}))
    assert short.extra_activations_mib * 2**20 == 2 * 30 * per_token
    long = decide_checkpointing(tiny_lora, section, "cpu", False, Dataset.from_dict({"input_ids": [[1] * 300]}))
    assert long.extra_activations_mib * 2**20 == 2 * 100 * per_token  # truncated at max_length


def test_online_methods_count_their_longest_prompt_as_tokenized_plus_the_completion(tiny_lora, monkeypatch):
    from datasets import Dataset

    from alignment.data.tokenizer import train_tokenizer
    from alignment.models.activation_memory import longest_prompt

    tok = train_tokenizer(["where does ana live ? lima . who wrote it ?"])
    prompts = [[{"role": "user", "content": "where does ana live ?"}], [{"role": "user", "content": "who ?"}]]
    rows = Dataset.from_dict({"prompt": prompts, "answers": [["lima"], ["ana"]]})
    longest = len(tok.apply_chat_template(prompts[0], add_generation_prompt=True, tokenize=True, return_dict=False))
    assert longest_prompt(rows, tok) == longest > 5  # the chat template's markers and the question's words
    assert longest_prompt(Dataset.from_dict({"prompt": ["where does ana live ?", "who ?"]}), tok) == 5
    assert longest_prompt(rows, None) is None and longest_prompt(Dataset.from_dict({"x": [1]}), tok) is None

    monkeypatch.setattr(activation_memory, "held_bytes", lambda device: 2**30)
    section = GRPOSection(per_device_train_batch_size=4, num_generations=2, max_completion_length=8, lora={"r": 4})
    per_token = 2 * (9 * 32 + 4 * 64 + 2 * 32 + 7 * 4) * 4  # two layers, fp32
    decision = decide_checkpointing(tiny_lora, section, "cpu", False, rows, tok)
    assert decision.extra_activations_mib * 2**20 == 4 * (longest + 8) * per_token
    unknown = decide_checkpointing(tiny_lora, section, "cpu", False, rows)  # no tokenizer: the bound
    assert unknown.extra_activations_mib * 2**20 == 4 * (128 + 8) * per_token
