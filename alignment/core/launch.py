"""A training stage in several processes: ``accelerate launch`` (DDP, FSDP or DeepSpeed, as its config says).

The stage's own process (a Prefect task, or the CLI) pickles what the stage was called with into a launch
directory and starts ``accelerate launch -m alignment.core.launched <spec>`` (the children's side, its own
module: this one, the parent's, imports neither the stage graph nor the run context). Every process runs the same stage
function with a worker context: the HF Trainer inside it shards the batches across processes. Rank 0 alone
writes the trained files into the artifact's temporary directory and sends progress events as JSON lines
on stdout; the parent turns those back into events, passes every other line to its log, and completes the
artifact (atomically, as for one process). A failed process fails the stage with the child's last lines; a
process killed by a signal (torchrun reports a negative exit code: a crash in a collective, not an error of the
stage's code or data) gets the launch started once more, resuming from the stage's last checkpoint if it saved one.
An interrupted parent (SIGTERM, Ctrl-C) stops its launch's processes before it ends: the launch runs in its own
process group, which gets SIGTERM, then SIGKILL once the launcher has ended (at most ``STOP_GRACE`` s).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignment.config.compute import ComputeConfig
from alignment.core.progress import Progress, ProgressEvent

if TYPE_CHECKING:
    from alignment.config.run import RunConfig
    from alignment.core.checkpoints import Checkpointing

logger = logging.getLogger("alignment.core.launch")
if logger.level == logging.NOTSET:  # the children's output is the point of this logger: INFO unless configured
    logger.setLevel(logging.INFO)

PROGRESS_PREFIX = "@alignment-progress "  # a child's stdout line that carries a progress event
METRICS_FILE = "launch-metrics.json"  # what rank 0's fit returned, read back (and removed) by the parent
TAIL_LINES = 40  # lines of the children's output quoted when they fail
LAUNCH_ATTEMPTS = 2  # a launch whose process was killed by a signal is started once more
STOP_GRACE = 10.0  # seconds an interrupted launch's processes get to end on SIGTERM before SIGKILL
KILLED_BY_SIGNAL = re.compile(r"exitcode\s*:\s*-\d+")  # torchrun's report of a child ended by a signal


class LaunchError(RuntimeError):
    """A process of a launched training stage failed."""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a launched process needs to run one stage the way its parent would have."""

    cfg: RunConfig
    store_root: str
    code: str | None
    stage: str
    entry: str  # the stage function, "module:function"
    section: str | None  # the config section it reads
    inputs: dict[str, Any]
    out_dir: Path
    checkpointing: Checkpointing | None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(compute: ComputeConfig, spec_path: Path) -> list[str]:
    """The ``accelerate launch`` command line: the accelerate config file if one is named (its
    ``num_processes`` is overridden by ``compute.num_processes``), else one-node DDP (``--multi_gpu``, which on
    CPU runs gloo)."""
    args = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(compute.num_processes)]
    args += ["--config_file", compute.accelerate_config] if compute.accelerate_config else ["--multi_gpu"]
    args += [
        "--num_machines",
        "1",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "alignment.core.launched",
        str(spec_path),
    ]
    return args


def launch(spec: LaunchSpec, progress: Progress) -> dict:
    """Run ``spec``'s stage in ``spec.cfg.compute.num_processes`` processes; returns rank 0's training metrics.
    The children's output goes to this process's log line by line, their progress events to ``progress``. A
    launch whose process was killed by a signal is started once more (``LAUNCH_ATTEMPTS``); any other failure, or
    a second crash, is a LaunchError with the children's last lines."""
    for attempt in range(1, LAUNCH_ATTEMPTS + 1):
        returncode, tail = _launch_once(spec, progress, attempt)
        if returncode == 0:
            break
        crashed = any(KILLED_BY_SIGNAL.search(line) for line in tail)
        if not crashed or attempt == LAUNCH_ATTEMPTS:
            raise LaunchError(
                f"{spec.stage}: a process of `accelerate launch --num_processes {spec.cfg.compute.num_processes}` "
                f"failed (exit {returncode}"
                + (f", killed by a signal in {attempt} launches" if crashed else "")
                + "); its last output:\n"
                + "\n".join(tail)
            )
        logger.warning("%s: a launched process was killed by a signal; launching again", spec.stage)
    metrics_file = spec.out_dir / METRICS_FILE
    if not metrics_file.is_file():
        raise LaunchError(f"{spec.stage}: the launched processes exited without rank 0's metrics ({metrics_file})")
    metrics = json.loads(metrics_file.read_text())
    metrics_file.unlink()
    return metrics


def _launch_once(spec: LaunchSpec, progress: Progress, attempt: int = 1) -> tuple[int, list[str]]:
    """One ``accelerate launch`` of the stage (the children see which in ``ALIGNMENT_LAUNCH_ATTEMPT``): its exit code
    and the children's last lines."""
    with tempfile.TemporaryDirectory(prefix=f"launch-{spec.stage}-") as tmp:
        spec_path = Path(tmp) / "spec.pkl"
        spec_path.write_bytes(pickle.dumps(spec))
        env = os.environ | {"PYTHONUNBUFFERED": "1", "ALIGNMENT_LAUNCHED": "1"}
        env["ALIGNMENT_LAUNCH_ATTEMPT"] = str(attempt)
        cmd = command(spec.cfg.compute, spec_path)
        logger.info("%s: %s", spec.stage, " ".join(cmd))
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        popen = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "env": env, "process_group": 0}
        with subprocess.Popen(cmd, **popen) as proc:
            try:
                for line in proc.stdout:
                    line = line.rstrip("\n")
                    if line.startswith(PROGRESS_PREFIX):
                        progress(ProgressEvent(**json.loads(line[len(PROGRESS_PREFIX) :])))
                        continue
                    tail.append(line)
                    logger.info("%s", line)
            except BaseException:  # SIGTERM (Prefect's TerminationSignal), Ctrl-C, a failing progress sink
                _stop(proc, spec.stage)
                raise
    return proc.returncode, list(tail)


def _stop(proc: subprocess.Popen, stage: str) -> None:
    """End an interrupted launch: SIGTERM to its process group (the launcher and every training process), then
    SIGKILL to what is left once the launcher has ended, or after ``STOP_GRACE`` s if it has not. Without it, the
    parent's exit would wait for the children (``Popen``'s ``__exit__``) or leave them training with nobody to read
    their output."""
    logger.warning("%s: interrupted; stopping the launched processes", stage)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_GRACE)
    except ProcessLookupError:  # the whole group had ended
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # what is left: the launcher past its grace, or a process it left behind
    except ProcessLookupError:
        pass
    proc.wait()
