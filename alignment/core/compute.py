"""Device selection and reproducibility settings shared by every stage (torch is imported on first use)."""

from __future__ import annotations

from dataclasses import dataclass

from alignment.config.compute import ComputeConfig


@dataclass(frozen=True)
class Device:
    """Where a stage computes: the torch device name and whether it trains in bf16."""

    name: str
    bf16: bool


def resolve_device(cfg: ComputeConfig) -> str:
    """The torch device a stage runs on ("cuda" or "cpu"); asking for cuda without one is an error."""
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("compute.device is 'cuda' but no CUDA device is available")
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def setup(cfg: ComputeConfig, seed: int) -> Device:
    """Seed every RNG, apply the thread count, and return the device (bf16 only where asked for and on a GPU:
    on CPU it is far slower, not faster)."""
    import torch
    from transformers import set_seed

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(seed)
    name = resolve_device(cfg)
    return Device(name, cfg.bf16 and name == "cuda")


def any_process(flag: bool, device) -> bool:
    """``flag`` agreed across the launched processes (true if any rank's is): ranks that decide on their own (a
    stop measured by greedy decoding, a memory estimate) could disagree, and ranks that disagree hang in the next
    collective. A single process: ``flag`` itself."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
