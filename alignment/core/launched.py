"""The entry point of a process started by ``accelerate launch`` (see ``alignment.core.launch``): it runs the
stage function named in the spec with a worker context. Rank 0 writes the trained files into the artifact's
temporary directory and sends progress events as JSON lines on stdout, which the parent turns back into events."""

from __future__ import annotations

from alignment.core.environment import apply as apply_environment

apply_environment()  # the parent's warning and log filters do not cross into a launched process

import importlib
import json
import os
import pickle
import sys
from dataclasses import asdict
from pathlib import Path

from alignment.core.context import StageContext, Worker
from alignment.core.launch import PROGRESS_PREFIX, LaunchSpec
from alignment.core.progress import ProgressEvent
from alignment.core.store import ArtifactStore


def rank() -> int:
    """This process's rank among the launched ones (0 outside a launch)."""
    return int(os.environ.get("RANK", "0"))


def _emit(event: ProgressEvent) -> None:
    if rank() == 0:
        print(PROGRESS_PREFIX + json.dumps(asdict(event), default=str), flush=True)


def main(spec_path: str) -> None:
    """One launched process: run the stage function with a worker context (see ``StageContext.worker``). An
    exception is recorded for torchrun, whose failure summary (the last lines the parent quotes) then holds the
    failing rank's own error."""
    from torch.distributed.elastic.multiprocessing.errors import record

    record(_run)(spec_path)


def _run(spec_path: str) -> None:
    spec: LaunchSpec = pickle.loads(Path(spec_path).read_bytes())
    worker = Worker(spec.out_dir, spec.checkpointing, main=rank() == 0)
    ctx = StageContext(spec.cfg, ArtifactStore(spec.store_root), progress=_emit, code=spec.code, worker=worker)
    module, name = spec.entry.split(":", 1)
    section = getattr(spec.cfg, spec.section) if spec.section else None
    getattr(importlib.import_module(module), name)(section, ctx, **spec.inputs)
    _leave_process_group()


def _leave_process_group() -> None:
    """Destroy the process group before the interpreter exits, as PyTorch asks: left to exit-time destructors,
    gloo's threads can abort the process ("terminate called without an active exception") after its work is done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # every rank done (rank 0 writes last) before any leaves
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
