"""Device selection and reproducibility settings shared by every stage."""

from __future__ import annotations

import random

import numpy as np
import torch

from alignment.config import ComputeConfig


def resolve_device(cfg: ComputeConfig) -> str:
    """The torch device a stage runs on ("cuda" or "cpu"); asking for cuda without one is an error."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("compute.device is 'cuda' but no CUDA device is available")
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def setup(cfg: ComputeConfig, seed: int) -> str:
    """Seed every RNG, apply the thread count, and return the device."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return resolve_device(cfg)


def use_bf16(cfg: ComputeConfig, device: str) -> bool:
    """bf16 only where asked for and on a GPU (on CPU it is far slower, not faster)."""
    return cfg.bf16 and device == "cuda"
