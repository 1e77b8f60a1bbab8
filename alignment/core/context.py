"""What every stage needs besides its config section: the store, the run's progress sink, its flow-run id,
the code version of the stage being run, and the new data files of a retrain."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignment.core.checkpoints import Checkpointing
from alignment.core.code_version import check_unchanged
from alignment.core.compute import Device, setup
from alignment.core.launch import METRICS_FILE, LaunchSpec, launch
from alignment.core.progress import Progress, ProgressEvent, log_event
from alignment.core.store import Artifact, ArtifactStore

if TYPE_CHECKING:  # annotations only: the run config (every section's module) is loaded by the caller
    from alignment.config.run import RunConfig


class NotInStore(LookupError):
    """A stage's artifact is not in the store and the context may not build it (``build=False``)."""


@dataclass(frozen=True)
class TrainingRun:
    """What a training function needs besides its config and data: where to write, on what device, with which
    seed, where to report progress and where to keep resumable checkpoints."""

    out_dir: Path
    device: Device
    seed: int
    progress: Progress
    stage: str
    checkpointing: Checkpointing | None = None
    main: bool = True  # False in the launched processes other than rank 0: they train but write nothing
    callbacks: tuple[Any, ...] = ()  # extra Trainer callbacks (the benchmark's step timer)

    def report(self, message: str = "", **fields: Any) -> None:
        """Send a progress event of this stage."""
        self.progress(ProgressEvent(self.stage, message, **fields))


@dataclass(frozen=True)
class Worker:
    """Set in a process started by ``accelerate launch`` (``alignment.core.launched``): the training stage trains
    straight into its parent's temporary artifact directory, and only the ``main`` process (rank 0) writes."""

    out_dir: Path
    checkpointing: Checkpointing | None
    main: bool


@dataclass(frozen=True)
class StageContext:
    """The run a stage belongs to. The graph sets ``code`` (the code version of the stage being run), ``stage``
    (its name in the graph), ``entry`` (its function, ``"module:function"``), ``section`` (the config section it
    reads) and ``inputs`` (what it was called with): a launched stage hands those to its processes. With ``build``
    False a missing artifact raises NotInStore instead of being built; ``worker`` is set in a launched process
    (``alignment.core.launched``)."""

    cfg: RunConfig
    store: ArtifactStore
    progress: Progress = log_event
    flow_run_id: str | None = None
    incoming: dict[str, list[Path]] = field(default_factory=dict)
    code: str | None = None
    build: bool = True
    stage: str | None = None
    entry: str | None = None
    section: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    worker: Worker | None = None

    def report(self, stage: str, message: str) -> None:
        """Send a progress event (a message, no step count)."""
        self.progress(ProgressEvent(stage, message))

    def _key(self, section: dict) -> dict:
        """What of the run, besides the stage's section and inputs, shapes its output: the seed and the compute
        settings that change numbers (device, bf16). Infrastructure's source is not in the code version
        (``alignment.core.code_version``), so what it decides reaches the id here, as config values."""
        compute = self.cfg.compute
        return {"section": section, "seed": self.cfg.seed, "compute": {"device": compute.device, "bf16": compute.bf16}}

    def artifact_id(self, stage: str, section: dict, inputs: dict) -> str:
        """The id the artifact of ``stage`` gets with this section and these inputs under the current code."""
        return self.store.artifact_id(stage, self._key(section), inputs, self.code)

    def materialize(
        self, stage: str, section: dict, inputs: dict, build: Callable[[Path], dict], extra: dict | None = None
    ) -> Artifact:
        """The stage's artifact: reused if one with the same section, inputs and code exists, else built."""
        if not self.build and self.store.get(self.artifact_id(stage, section, inputs)) is None:
            raise NotInStore(stage)

        def build_unchanged(tmp: Path) -> dict:
            metrics = build(tmp)
            if self.entry and self.code:  # never label an artifact with code it was not built with
                check_unchanged(self.entry.split(":", 1)[0], self.code)
            return metrics

        art, reused = self.store.materialize(
            stage,
            self._key(section),
            inputs,
            build_unchanged,
            seed=self.cfg.seed,
            flow_run_id=self.flow_run_id,
            extra=extra,
            version=self.code,
        )
        self.report(stage, f"{'reused' if reused else 'built'} {art.id} ({art.path})")
        return art

    def device(self) -> Device:
        """Seed every RNG (transformers' set_seed), apply the thread count and pick the device."""
        return setup(self.cfg.compute, self.cfg.seed)

    def train(
        self,
        stage: str,
        section: dict,
        inputs: dict,
        fit: Callable[[TrainingRun], dict],
        extra: dict | None = None,
        *,
        launchable: bool = True,
    ) -> Artifact | None:
        """A training stage's artifact: ``fit(run)`` trains into ``run.out_dir``, resuming from the checkpoints a
        killed attempt of the same artifact left; the checkpoints are dropped once the artifact is complete.
        With ``compute.num_processes`` > 1 a ``launchable`` stage (one that trains through an HF Trainer) trains
        in that many processes (``alignment.core.launch``); its id then records the process count, since the global
        batch is the per-device batch times the processes. In a launched process it only trains (returns None)."""
        processes = self.cfg.compute.num_processes if launchable else 1
        if processes > 1:
            section = section | {"num_processes": processes}
        if self.worker:
            w = self.worker
            run = TrainingRun(w.out_dir, self.device(), self.cfg.seed, self.progress, stage, w.checkpointing, w.main)
            metrics = fit(run)
            if w.main:
                (w.out_dir / METRICS_FILE).write_text(json.dumps(metrics))
            return None
        every = self.cfg.compute.checkpoint_steps
        directory = self.store.root / ".checkpoints" / self.artifact_id(stage, section, inputs)
        checkpointing = Checkpointing(directory, every) if every is not None else None

        def build(tmp: Path) -> dict:
            if processes > 1:
                spec = LaunchSpec(
                    self.cfg,
                    str(self.store.root),
                    self.code,
                    self.stage,
                    self.entry,
                    self.section,
                    self.inputs,
                    tmp,
                    checkpointing,
                )
                metrics = launch(spec, self.progress)
            else:
                metrics = fit(TrainingRun(tmp, self.device(), self.cfg.seed, self.progress, stage, checkpointing))
            shutil.rmtree(tmp / "trainer", ignore_errors=True)
            return metrics

        art = self.materialize(stage, section, inputs, build, extra)
        if checkpointing:
            shutil.rmtree(checkpointing.directory, ignore_errors=True)
        return art
