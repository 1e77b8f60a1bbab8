"""The alignment pipeline as a Prefect flow: one task per stage, chained.

Caching is the artifact store's (content ids), so Prefect's own result caching is off. Progress goes
to the Prefect run logger; the report is published as Markdown and table artifacts.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from alignment import stages
from alignment.ablation import RunResult, write_comparison
from alignment.config import RunConfig
from alignment.lineage import lineage, render_markdown
from alignment.report import read_metrics
from alignment.store import Artifact, ArtifactStore

# A training task that fails (killed worker, OOM) is retried; the retry resumes from the stage's last
# checkpoint (compute.checkpoint_steps) instead of step 0.
TRAINING_RETRIES = {"retries": 1, "retry_delay_seconds": 5}


_STEP = re.compile(r"^(?P<stage>[a-z]+) step (?P<step>\d+)/(?P<total>\d+)")


class RunProgress:
    """Stage progress lines to the Prefect run log; a ``"<stage> step n/total"`` line also moves that
    stage's progress artifact (``progress-<stage>``, in percent) so the UI shows training advance."""

    def __init__(self) -> None:
        self.logger = get_run_logger()
        self.artifacts: dict[str, UUID] = {}

    def __call__(self, message: str) -> None:
        self.logger.info(message)
        step = _STEP.match(message)
        if not step:
            return
        percent = round(100 * int(step["step"]) / max(int(step["total"]), 1), 1)
        stage = step["stage"]
        if stage in self.artifacts:
            update_progress_artifact(self.artifacts[stage], progress=percent)
        else:
            self.artifacts[stage] = create_progress_artifact(
                progress=percent, key=f"progress-{stage}", description=f"{stage}: training steps done (%)"
            )


def _context(cfg: RunConfig) -> stages.StageContext:
    return stages.StageContext(
        cfg=cfg, store=ArtifactStore(cfg.store.root), progress=RunProgress(), flow_run_id=str(flow_run.get_id())
    )


@task(name="world", cache_policy=NO_CACHE)
def world_task(cfg: RunConfig) -> Artifact:
    return stages.world_stage(_context(cfg))


@task(name="validate-data", cache_policy=NO_CACHE)
def validate_task(cfg: RunConfig, world: Artifact) -> stages.DataFiles:
    files = stages.data_files(cfg, world)
    counts = stages.validate_data(files)
    get_run_logger().info(f"validate-data: {counts}")
    return files


@task(name="base-model", cache_policy=NO_CACHE)
def base_task(cfg: RunConfig, world: Artifact) -> Artifact:
    return stages.base_stage(_context(cfg), world)


@task(name="sft", cache_policy=NO_CACHE, **TRAINING_RETRIES)
def sft_task(cfg: RunConfig, base: Artifact, files: stages.DataFiles) -> Artifact:
    return stages.sft_stage(_context(cfg), base, files)


@task(name="probe-pairs", cache_policy=NO_CACHE)
def pairs_task(cfg: RunConfig, base: Artifact, sft: Artifact, files: stages.DataFiles) -> stages.DataFiles:
    _, files = stages.pairs_stage(_context(cfg), base, sft, files)
    return files


@task(name="reward-model", cache_policy=NO_CACHE, **TRAINING_RETRIES)
def reward_task(cfg: RunConfig, base: Artifact, files: stages.DataFiles) -> Artifact:
    return stages.reward_stage(_context(cfg), base, files)


@task(name="dpo", cache_policy=NO_CACHE, **TRAINING_RETRIES)
def dpo_task(cfg: RunConfig, base: Artifact, sft: Artifact, files: stages.DataFiles) -> Artifact:
    return stages.dpo_stage(_context(cfg), base, sft, files)


@task(name="knowledge-probe", cache_policy=NO_CACHE)
def probe_task(cfg: RunConfig, base: Artifact, sft: Artifact, files: stages.DataFiles) -> Artifact:
    return stages.probe_stage(_context(cfg), base, sft, files)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(
    cfg: RunConfig,
    base: Artifact,
    sft: Artifact,
    dpo: Artifact,
    reward: Artifact,
    files: stages.DataFiles,
    probe: Artifact,
) -> Artifact:
    evaluation = stages.evaluate_stage(_context(cfg), base, sft, dpo, reward, files, probe)
    publish_report(evaluation)
    publish_lineage(cfg, evaluation)
    return evaluation


def publish_lineage(cfg: RunConfig, evaluation: Artifact) -> None:
    """The evaluation's lineage (back to the base model and every dataset file) as a Markdown artifact."""
    tree = lineage(ArtifactStore(cfg.store.root), evaluation.path)
    markdown = "# Lineage\n\n" + render_markdown(tree) + "\n\nCLI: `alignment lineage " + evaluation.id + "`\n"
    create_markdown_artifact(key="alignment-lineage", markdown=markdown, description=f"lineage of {evaluation.id}")


def _inline_images(markdown: str, directory: Path) -> str:
    """Embed the report's PNG figures as data URIs so the Prefect UI shows them without file access."""
    for png in directory.glob("*.png"):
        data = base64.b64encode(png.read_bytes()).decode()
        markdown = markdown.replace(f"]({png.name})", f"](data:image/png;base64,{data})")
    return markdown


def publish_report(evaluation: Artifact) -> None:
    """The evaluation's report (with its plots) as a Markdown artifact; metrics and sweep as tables."""
    metrics = read_metrics(evaluation.path)
    report = _inline_images((evaluation.path / "report.md").read_text(), evaluation.path)
    create_markdown_artifact(key="alignment-report", markdown=report, description=f"evaluation {evaluation.id}")
    rows = []
    for model in ("base", "sft", metrics["policy"]):
        row = {"model": model}
        row.update({k: round(v["value"], 4) for k, v in metrics[model].items() if "value" in v})
        rows.append(row)
    create_table_artifact(key="alignment-metrics", table=rows, description=f"evaluation {evaluation.id}")
    if metrics.get("sampling_sweep"):
        create_table_artifact(
            key="alignment-sampling-sweep", table=metrics["sampling_sweep"], description=f"evaluation {evaluation.id}"
        )


@task(name="merge-data", cache_policy=NO_CACHE)
def merge_task(cfg: RunConfig, files: stages.DataFiles, kind: str, extra: list[Path]) -> stages.DataFiles:
    _, files = stages.merge_stage(_context(cfg), files, kind, extra)
    return files


def run_stages(cfg: RunConfig, incoming: dict[str, list[Path]] | None = None) -> dict[str, Artifact]:
    """Every stage as a task, in order; ``incoming`` data files (by kind) are appended to the run's own.
    Returns the artifacts by stage."""
    incoming = incoming or {}
    world = world_task(cfg)
    files = validate_task(cfg, world)
    if incoming.get("demonstrations"):
        files = merge_task(cfg, files, "demonstrations", incoming["demonstrations"])
    base = base_task(cfg, world)
    sft = sft_task(cfg, base, files)
    if cfg.data.preference_source == "probe":
        files = pairs_task(cfg, base, sft, files)
    if incoming.get("preferences"):
        files = merge_task(cfg, files, "preferences", incoming["preferences"])
    reward = reward_task(cfg, base, files)
    dpo = dpo_task(cfg, base, sft, files)
    probe = probe_task(cfg, base, sft, files)
    evaluation = evaluate_task(cfg, base, sft, dpo, reward, files, probe)
    return {"world": world, "base": base, "sft": sft, "reward": reward, "dpo": dpo, "probe": probe,
            "evaluate": evaluation}  # fmt: skip


@flow(name="alignment-pipeline", log_prints=True)
def alignment_pipeline(cfg: RunConfig = RunConfig()) -> str:  # noqa: B008 - frozen model, the UI form's default
    """World -> base -> SFT -> (probe pairs) -> reward -> DPO -> probe -> evaluation; returns its directory."""
    return str(Path(run_stages(cfg)["evaluate"].path).resolve())


@flow(name="alignment-ablation", log_prints=True)
def ablation_flow(configs: dict[str, RunConfig], out: str = "runs/ablation.md") -> str:
    """Run the pipeline once per named config (stages they share are reused) and compare them."""
    runs = []
    for name, cfg in configs.items():
        evaluation = Path(alignment_pipeline.with_options(flow_run_name=f"ablation-{name}")(cfg))
        metrics = read_metrics(evaluation)
        runs.append(RunResult(name, cfg.world.mismatch, metrics, str(evaluation)))
    text = write_comparison(runs, Path(out))
    create_markdown_artifact(key="alignment-ablation", markdown=text, description=", ".join(configs))
    return str(Path(out).resolve())


def configure_environment() -> None:
    """Offline, quiet defaults for running the flow locally."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
