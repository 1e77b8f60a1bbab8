"""The reference as TRL reaches it with ``peft_config`` (the policy under ``disable_adapter()``): the same outputs and
the same adapter states as PEFT's own context, without walking the model."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from alignment.models.adapter_switch import quick_disable_adapter

IDS = torch.tensor([[3, 7, 1, 9, 4], [2, 2, 8, 5, 6]])


def _base() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    )


def _policy(**lora):
    base = _base()
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM", **lora))
    for name, param in model.named_parameters():  # a trained adapter: LoRA B is zero when fresh
        if "lora_B" in name:
            param.data.normal_(0, 0.3)
    return model


def _states(model) -> tuple:
    """What a disable context sets: each layer's flag, each weight's requires_grad, the model's mark."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    flags = tuple(m._disable_adapters for m in model.modules() if isinstance(m, BaseTunerLayer))
    grads = tuple((n, p.requires_grad) for n, p in model.named_parameters())
    return flags, grads, model._adapters_disabled


def test_the_quick_switch_gives_the_base_model_and_the_states_peft_gives():
    model, peft = _policy(), _policy()
    assert quick_disable_adapter(model)
    adapted = model(IDS).logits
    with peft.disable_adapter():
        peft_inside, peft_logits = _states(peft), peft(IDS).logits
    with model.disable_adapter():
        inside, logits = _states(model), model(IDS).logits
    assert inside == peft_inside and all(inside[0]) and inside[2] is True
    assert not any(grad for name, grad in inside[1] if "lora_" in name)
    torch.testing.assert_close(logits, peft_logits, rtol=0, atol=0)
    assert not torch.allclose(logits, adapted)  # the adapter was on, and is off inside
    assert _states(model) == _states(peft)  # both restored: adapters on, trainable, the model unmarked
    torch.testing.assert_close(model(IDS).logits, adapted, rtol=0, atol=0)


def test_a_frozen_adapter_stays_frozen_and_an_error_inside_restores_the_adapter():
    model = _policy()
    quick_disable_adapter(model)
    frozen = next(p for n, p in model.named_parameters() if "lora_A" in n)
    frozen.requires_grad_(False)  # a weight the trainer does not train keeps its own flag
    before = _states(model)
    with pytest.raises(RuntimeError, match="inside"), model.disable_adapter():
        raise RuntimeError("inside")
    assert _states(model) == before


def test_nested_and_irregular_states_go_to_pefts_own_context():
    model = _policy()
    quick_disable_adapter(model)
    with model.disable_adapter():
        with model.disable_adapter():  # already disabled: PEFT's, which leaves it disabled on exit
            assert _states(model)[2] is True
        assert all(_states(model)[0]) and _states(model)[2] is True
    assert not any(_states(model)[0]) and _states(model)[2] is False


def test_trls_reference_context_goes_through_it():
    from trl.trainer.utils import use_adapter

    model = _policy()
    quick_disable_adapter(model)
    with use_adapter(model, adapter_name=None):
        assert all(_states(model)[0])
    assert not quick_disable_adapter(_policy(modules_to_save=["lm_head"]))  # wrappers: PEFT's own context
    assert not quick_disable_adapter(_base())  # not a PeftModel
