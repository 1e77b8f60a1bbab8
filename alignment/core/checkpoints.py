"""Resumable training: where a stage keeps its Trainer checkpoints and which one a re-run resumes from."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Checkpointing:
    """Where a training stage keeps resumable checkpoints, and every how many optimizer steps it saves one."""

    directory: Path
    every_steps: int


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a Trainer checkpoint directory (``checkpoint-<step>``) was saved at."""
    return int(checkpoint.name.rsplit("-", 1)[-1])


def last_complete_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint a killed run left intact. The Trainer writes ``trainer_state.json`` after the
    weights, optimizer and RNG state, so a checkpoint whose state file is missing or unreadable was cut off
    mid-save: it is removed, and the one before it is used."""
    if not directory.is_dir():
        return None
    found = sorted(directory.glob("checkpoint-*"), key=checkpoint_step, reverse=True)
    for checkpoint in found:
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            return checkpoint
        except (OSError, ValueError):
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None
