"""Device selection and reproducibility settings shared by every stage."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import set_seed

from alignment.config import ComputeConfig
from alignment.context import Device


def resolve_device(cfg: ComputeConfig) -> str:
    """The torch device a stage runs on ("cuda" or "cpu"); asking for cuda without one is an error."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("compute.device is 'cuda' but no CUDA device is available")
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def check_compute(cfg: ComputeConfig, source: str) -> None:
    """The compute settings against this machine, before any work: a GPU asked for must be there, the processes
    must not outnumber the GPUs they would run on, and a named accelerate config must exist."""
    from alignment.config import ConfigError

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cfg.device == "cuda" and not gpus:
        raise ConfigError(f"{source}: key 'compute.device' is 'cuda' but this machine has no CUDA device")
    if cfg.num_processes > 1 and resolve_device(cfg) == "cuda" and cfg.num_processes > gpus:
        raise ConfigError(
            f"{source}: key 'compute.num_processes' is {cfg.num_processes} but this machine has {gpus} GPU(s)"
        )
    if cfg.accelerate_config and not Path(cfg.accelerate_config).is_file():
        raise ConfigError(f"{source}: key 'compute.accelerate_config': {cfg.accelerate_config} is not a file")


def setup(cfg: ComputeConfig, seed: int) -> Device:
    """Seed every RNG, apply the thread count, and return the device (bf16 only where asked for and on a GPU:
    on CPU it is far slower, not faster)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(seed)
    name = resolve_device(cfg)
    return Device(name, cfg.bf16 and name == "cuda")
