"""The alignment pipeline as a Prefect flow: one task per stage of the library's stage graph, in the
graph's order.

Caching is the artifact store's (content ids), so Prefect's own result caching is off. Progress events
become run-log lines and one progress artifact per training stage; the report is published as Markdown
and table artifacts, the lineage as Markdown.
"""

from __future__ import annotations

from alignment.core import environment

environment.apply()  # a worker loads this file by path, without flows/__init__: defaults before any import

import base64
from pathlib import Path
from typing import Any
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

from alignment import graph
from alignment.config.run import RunConfig
from alignment.core.allowed_paths import confine, confine_paths
from alignment.core.context import StageContext
from alignment.core.lineage import lineage, render_markdown
from alignment.core.prechecks import check_chat_template
from alignment.core.progress import Progress, ProgressEvent, fan_out
from alignment.core.store import Artifact, ArtifactStore
from alignment.evaluation.report import read_metrics
from alignment.studies.ablation import RunResult, write_comparison
from alignment.studies.seeds import SeedRun, write_page

# A training task that fails (killed worker, OOM) is retried once; the retry resumes from the stage's last
# checkpoint (compute.checkpoint_steps) instead of step 0.
TRAINING_RETRIES = {"retries": 1, "retry_delay_seconds": 5}

# Extra progress sinks of this process (the CLI adds its progress bars).
LOCAL_SINKS: list[Progress] = []


class PrefectProgress:
    """Progress events to the Prefect run log; an event with a step count also moves that stage's progress
    artifact (``progress-<stage>``, in percent), so the UI shows training advance."""

    def __init__(self) -> None:
        self.logger = get_run_logger()
        self.artifacts: dict[str, UUID] = {}

    def __call__(self, event: ProgressEvent) -> None:
        self.logger.info(str(event))
        if event.fraction is None:
            return
        percent = round(100 * event.fraction, 1)
        if event.stage in self.artifacts:
            update_progress_artifact(self.artifacts[event.stage], progress=percent)
        else:
            self.artifacts[event.stage] = create_progress_artifact(
                progress=percent, key=f"progress-{event.stage}", description=f"{event.stage}: training steps done (%)"
            )


def stage_context(cfg: RunConfig, incoming: dict[str, list[Path]] | None = None) -> StageContext:
    """The library's stage context inside a Prefect task: progress to Prefect (and local sinks), this run's id."""
    return StageContext(
        cfg=cfg,
        store=ArtifactStore(cfg.store.root),
        progress=fan_out(PrefectProgress(), *LOCAL_SINKS),
        flow_run_id=str(flow_run.get_id()),
        incoming=incoming or {},
    )


@task(cache_policy=NO_CACHE)
def stage_task(cfg: RunConfig, name: str, inputs: dict[str, Any], incoming: dict | None = None) -> Any:
    """One stage of the graph (the task is renamed for the stage it runs)."""
    return graph.build_stage(stage_context(cfg, incoming), graph.stages(cfg)[name], inputs)


def run_stages(
    cfg: RunConfig, targets: tuple[str, ...] = graph.PIPELINE, given: dict | None = None, incoming: dict | None = None
) -> dict[str, Any]:
    """Walk the stage graph for ``targets``, each stage a task named for it; ``given`` values are not rebuilt;
    ``incoming`` data files (by kind) are appended to the run's own. Returns every value by stage name. A worker
    that confines paths (``ALIGNMENT_ALLOWED_ROOTS``) refuses a config naming others before the first stage, as
    any run refuses a chat template file that is not there."""
    confine(cfg)
    check_chat_template(cfg.model, "run config")

    def execute(stage: graph.Stage, inputs: dict[str, Any]) -> Any:
        options = TRAINING_RETRIES if stage.trains else {}
        return stage_task.with_options(name=stage.name, **options)(cfg, stage.name, inputs, incoming)

    values = graph.run(cfg, execute, targets, given)
    if "report" in targets:
        publish_task(cfg, values["report"], values["evaluate"])
    return values


@task(name="publish", cache_policy=NO_CACHE)
def publish_task(cfg: RunConfig, report: Artifact, evaluation: Artifact) -> None:
    """The report, its metrics and the evaluation's lineage as Prefect artifacts on this flow run."""
    publish_report(report, evaluation)
    publish_lineage(cfg, evaluation)


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


def publish_report(report: Artifact, evaluation: Artifact) -> None:
    """The report (with its plots) as a Markdown artifact; metrics and the sampling sweep as tables."""
    metrics = read_metrics(evaluation.path)
    markdown = _inline_images((report.path / "report.md").read_text(), report.path)
    create_markdown_artifact(key="alignment-report", markdown=markdown, description=f"evaluation {evaluation.id}")
    rows = []
    for model in ("base", "sft", *metrics.get("policies", [metrics["policy"]])):
        row = {"model": model}
        row.update({k: round(v["value"], 4) for k, v in metrics[model].items() if "value" in v})
        rows.append(row)
    create_table_artifact(key="alignment-metrics", table=rows, description=f"evaluation {evaluation.id}")
    if metrics.get("sampling_sweep"):
        create_table_artifact(
            key="alignment-sampling-sweep", table=metrics["sampling_sweep"], description=f"evaluation {evaluation.id}"
        )


def outcome(values: dict[str, Any]) -> dict[str, str]:
    """Where a run's evaluation (metrics.json, answers.jsonl), report (report.md, plots) and exported policy are."""
    return {name: str(Path(values[name].path).resolve()) for name in ("evaluate", "report", "export")}


@flow(name="alignment-pipeline")
def alignment_pipeline(cfg: RunConfig = RunConfig()) -> dict[str, str]:  # noqa: B008 - frozen model, the UI form's default
    """World -> base -> SFT -> (probe pairs) -> reward -> policies (DPO, RLOO, KTO: the config's) -> probe ->
    evaluation -> report, and the first policy exported; returns the evaluation's, the report's and the export's
    directories."""
    return outcome(run_stages(cfg))


def confine_all(configs: dict[str, RunConfig], out: str) -> None:
    """On a worker that confines paths: every config's paths and the page's, before the first run starts."""
    for cfg in configs.values():
        confine(cfg)
    confine_paths({"parameter 'out'": out})


@flow(name="alignment-ablation")
def ablation_flow(configs: dict[str, RunConfig], out: str = "runs/ablation.md") -> str:
    """Run the pipeline once per named config (stages they share are reused) and compare them."""
    confine_all(configs, out)
    runs = []
    for name, cfg in configs.items():
        evaluation = Path(alignment_pipeline.with_options(flow_run_name=f"ablation-{name}")(cfg)["evaluate"])
        runs.append(RunResult(name, cfg.world.mismatch, read_metrics(evaluation), str(evaluation), cfg.world.labeller))
    text = write_comparison(runs, Path(out))
    create_markdown_artifact(key="alignment-ablation", markdown=text, description=", ".join(configs))
    return str(Path(out).resolve())


@flow(name="alignment-seeds")
def seeds_flow(configs: dict[str, RunConfig], out: str = "runs/seeds.md", command: str = "") -> tuple[str, list[str]]:
    """Run the pipeline once per world seed (``configs``: seed, as text -> config) and write the seeds page: every
    metric's spread over the seeds and the bounds each seed must meet. Returns the page's path and the failed bounds."""
    confine_all(configs, out)
    runs = []
    for seed, cfg in configs.items():
        evaluation = Path(alignment_pipeline.with_options(flow_run_name=f"seed-{seed}")(cfg)["evaluate"])
        runs.append(SeedRun(int(seed), read_metrics(evaluation), str(evaluation)))
    text, bounds = write_page(runs, Path(out), command)
    create_markdown_artifact(key="alignment-seeds", markdown=text, description=f"seeds {', '.join(configs)}")
    return str(Path(out).resolve()), [b.text for b in bounds if not b.holds]
