"""The adapter-disabled policy, switched to without walking the model: with ``peft_config`` the reference of TRL's
RLOO, GRPO, DPO and KTO is the policy under ``PeftModel.disable_adapter()``, which walks every module three times
per call (a status check and two flag passes). On a small model that walk costs more than the reference's forward.
``quick_disable_adapter`` collects the LoRA layers and their weights once and flips the same flags."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def quick_disable_adapter(model: torch.nn.Module) -> bool:
    """Give ``model`` (a LoRA ``PeftModel``) a ``disable_adapter`` that sets what PEFT's sets -- every LoRA layer
    disabled, its adapter weights frozen, the model marked -- from layers collected once, and restores each weight's
    own ``requires_grad`` on exit. Falls back to PEFT's where its states are not regular (adapters already disabled,
    some layers off) and is not installed on prompt-learning adapters or models with ``modules_to_save`` wrappers.
    Returns whether it was installed."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    if not isinstance(model, PeftModel):
        return False
    config = model.active_peft_config
    if config.is_prompt_learning or config.is_adaption_prompt:
        return False
    modules = list(model.modules())
    if any(isinstance(m, AuxiliaryTrainingWrapper) for m in modules):
        return False
    layers = [m for m in modules if isinstance(m, BaseTunerLayer)]
    peft_disable = model.disable_adapter  # PEFT's own, for the states it alone handles

    @contextmanager
    def disable_adapter() -> Iterator[None]:
        if model._adapters_disabled or any(layer._disable_adapters for layer in layers):
            with peft_disable():
                yield
            return
        weights = [p for layer in layers for p in _adapter_weights(layer) if p.is_leaf]  # FSDP: leaves only
        trainable = [p.requires_grad for p in weights]
        for layer in layers:
            layer._disable_adapters = True
        for p in weights:
            p.requires_grad_(False)
        model._adapters_disabled = True
        try:
            yield
        finally:
            for layer in layers:
                layer._disable_adapters = False
            for p, grad in zip(weights, trainable, strict=True):
                p.requires_grad_(grad)
            model._adapters_disabled = False

    model.disable_adapter = disable_adapter
    return True


def _adapter_weights(layer: torch.nn.Module) -> Iterator[torch.Tensor]:
    """The adapter weights of a PEFT tuner layer (its modules' parameters, or parameters held directly)."""
    for name in layer.adapter_layer_names:
        for adapter in getattr(layer, name).values():
            if isinstance(adapter, torch.Tensor):
                yield adapter
            else:
                yield from adapter.parameters()
