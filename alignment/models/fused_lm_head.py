"""TRL's fused LM head, projecting only the positions a loss scores on every device, the CPU included.

TRL 1.16's SFT, DPO, KTO, RLOO and GRPO trainers compute per-token log-probabilities with a fused LM head
(``trl.trainer.utils.add_fused_lm_head``): the vocabulary projection runs in tiles, never as the whole
``[batch, sequence, vocabulary]`` logits. On CUDA and XPU it projects only the positions whose label is not -100
(the answer, for completion-only losses); on any other device it projects every position, prompt and padding
included, and zeroes the unscored ones afterwards, so that an XLA device (Neuron) compiles a single tile shape.
A CPU compiles nothing, so there that costs the projection of every unscored position, forward and backward: on
SmolLM2 the vocabulary projection is a fifth of the model's FLOPs, and most positions of a chat prompt are unscored.
``compact_fused_lm_head`` makes TRL's head project only the scored positions on the CPU too: the same log-probabilities,
fewer FLOPs and smaller tiles.
"""

from __future__ import annotations

import torch

# Devices where TRL's own choice is kept: everything but the CPU (XLA devices need the fixed tile shape)
COMPACT_DEVICE_TYPES = frozenset({"cpu"})


def compact_fused_lm_head() -> None:
    """Make ``trl.trainer.utils.add_fused_lm_head`` project only the scored positions on the CPU too (once per
    process; TRL reads the switch on every call). TRL decides it with ``_use_triton(device)``, which its fused head
    uses for nothing else; an error names the TRL version if that function is gone."""
    import trl
    import trl.trainer.utils as trl_utils

    decide = getattr(trl_utils, "_use_triton", None)
    if decide is None:
        raise RuntimeError(
            f"trl {trl.__version__}: trl.trainer.utils._use_triton is gone; alignment.models.fused_lm_head was written "
            "for TRL 1.16's fused LM head"
        )
    if getattr(decide, "compact_on_cpu", False):
        return

    def compact(device: torch.device) -> bool:
        return device.type in COMPACT_DEVICE_TYPES or decide(device)

    compact.compact_on_cpu = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact
