"""Scheduled retraining as champion/challenger (deployment `alignment-retrain/retrain`, on a cron).

New data files in the data location -> a challenger that re-runs only the stages whose inputs changed ->
evaluated against the promoted policy -> promoted only if it passes the gates. The decision is a
Prefect artifact and a record in the store; the promoted pointer moves atomically.
"""

from __future__ import annotations

from alignment.core import environment

environment.apply()  # a worker loads this file by path, without flows/__init__: defaults before any import

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from alignment.config.policies import POLICY_NAMES
from alignment.config.run import RetrainConfig, RunConfig
from alignment.core.allowed_paths import confine
from alignment.core.store import Artifact, ArtifactStore
from alignment.studies import retrain as lib
from flows.pipeline import run_stages


@task(name="scan-incoming", cache_policy=NO_CACHE)
def scan_task(rcfg: RetrainConfig) -> lib.Incoming:
    incoming = lib.scan_incoming(rcfg.data_dir)
    found = ", ".join(f"{kind}: {[p.name for p in paths]}" for kind, paths in incoming.files.items())
    get_run_logger().info(f"scan-incoming: {rcfg.data_dir}: {found}")
    return incoming


def evaluate_champion(cfg: RunConfig, champion: dict) -> Artifact:
    """The champion evaluated on this run's held-out data (reused when it already was)."""
    store = ArtifactStore(cfg.store.root)
    given = {stage: store.load(art) for stage, art in champion["artifacts"].items() if stage != "evaluate"}
    policies = [stage for stage in champion["artifacts"] if stage in POLICY_NAMES]
    return run_stages(cfg.model_copy(update={"policies": policies}), ("evaluate",), given)["evaluate"]


@task(name="decide", cache_policy=NO_CACHE)
def decide_task(cfg: RunConfig, rcfg: RetrainConfig, challenger: dict, champion: lib.Champion | None) -> dict:
    """Compare the challenger with the champion, apply the gates, record the decision and publish it."""
    log = lib.PromotionLog(ArtifactStore(cfg.store.root), rcfg.name)
    arts, fp = challenger["artifacts"], challenger["fingerprint"]
    this_run = str(flow_run.get_id())
    built = [s for s in lib.policy_stages(cfg.policies) if arts[s].manifest.get("flow_run_id") == this_run]
    comparison = None
    if champion is not None and champion.evaluation is not None:
        comparison = lib.compare(arts["evaluate"], champion.evaluation, cfg.eval.bootstrap_samples, cfg.eval.seed)
    decision = lib.decide(rcfg, lib.policy_record(arts, fp), champion.pointer if champion else None, comparison, built)
    path = log.record(decision)
    decision["record"] = str(path)
    create_markdown_artifact(
        key="retrain-decision", markdown=lib.render_decision(decision), description=decision["reason"]
    )
    if decision["gates"]:
        create_table_artifact(key="retrain-gates", table=decision["gates"], description=decision["reason"])
    get_run_logger().info(f"retrain: {'promoted' if decision['promoted'] else 'not promoted'}: {decision['reason']}")
    return decision


@flow(name="alignment-retrain")
def retrain_flow(cfg: RunConfig = RunConfig(), retrain: RetrainConfig = RetrainConfig()) -> dict:  # noqa: B008
    """Retrain on new data in ``retrain.data_dir`` and promote the challenger if it beats the champion.

    Returns the decision: ``promoted``, ``reason``, ``stages_built`` and the numbers behind it.
    """
    confine(cfg, retrain.data_dir)  # on a worker that confines paths: before anything is read
    incoming = scan_task(retrain)
    fp = lib.fingerprint(cfg, incoming)
    log = lib.PromotionLog(ArtifactStore(cfg.store.root), retrain.name)
    last = lib.unchanged(log, fp)
    if last is not None:
        reason = f"no new data in {retrain.data_dir} since the decision of {last['decided_at']}"
        markdown = f"# Retrain: nothing to do\n\n{reason}: nothing trained, nothing promoted.\n"
        create_markdown_artifact(key="retrain-decision", markdown=markdown, description=reason)
        get_run_logger().info(f"retrain: {reason}")
        return {"promoted": False, "reason": reason, "stages_built": [], "record": None}
    pointer = log.champion()  # read once, at the start: the decision is made against this champion
    arts = run_stages(cfg, incoming=incoming.files)
    champion = None
    if pointer is not None:
        same = pointer["artifacts"]["evaluate"] == arts["evaluate"].id
        champion = lib.Champion(pointer, None if same else evaluate_champion(cfg, pointer))
    return decide_task(cfg, retrain, {"artifacts": arts, "fingerprint": fp}, champion)
