"""The stage graph, declared once: each stage's name (the value it produces), the values it consumes, its
config section and the function that builds it. The order of a run follows from the inputs.

The CLI, the Prefect pipeline flow, the per-stage flows and the retrain flow all walk this declaration.
Stage functions are named ``"module:function"`` and imported only when the stage runs, so a run whose
stages are all cached never imports torch; a stage's cache key hashes its module's import closure, which never
includes this module: adding a row here rebuilds nothing that exists. Adding a stage is one entry here, its module
and its config section; a preference policy is instead one row of ``alignment.config.policies``, from which its
stage here, and the policy inputs of evaluation and export, are derived.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from alignment.config.policies import POLICIES
from alignment.config.run import RunConfig
from alignment.core.code_version import code_version, pin
from alignment.core.context import NotInStore, StageContext
from alignment.core.store import Artifact, ArtifactStore, is_dataset_ref


def _synthetic_world(cfg: RunConfig) -> bool:
    return cfg.facts is None


def _real_facts(cfg: RunConfig) -> bool:
    return cfg.facts is not None


def _world_data(cfg: RunConfig) -> bool:
    return cfg.facts is None and cfg.data.needs_world()


def _own_data(cfg: RunConfig) -> bool:
    return cfg.facts is None and not cfg.data.needs_world()


def _tiny_base(cfg: RunConfig) -> bool:
    return cfg.model.name_or_path is None


def _given_base(cfg: RunConfig) -> bool:
    return cfg.model.name_or_path is not None


def _listed(name: str) -> Callable[[RunConfig], bool]:
    """Whether the config trains the policy ``name`` (one of its ``policies``)."""
    return lambda cfg: name in cfg.policies


def _stored_reference(cfg: RunConfig) -> bool:
    return "dpo" in cfg.policies and cfg.dpo.precompute_ref_log_probs


def _probe_pairs(cfg: RunConfig) -> bool:
    return cfg.data.preference_source == "probe"


def _constructed_pairs(cfg: RunConfig) -> bool:
    return cfg.data.preference_source == "construction"


@dataclass(frozen=True)
class Stage:
    """One stage: ``build(section, ctx, **inputs)`` returns its value (an Artifact, or RunData). An input
    ending in ``?`` is optional: used when the config runs that stage (e.g. each listed policy)."""

    name: str
    build: str
    inputs: tuple[str, ...] = ()
    section: str | None = None
    when: Callable[[RunConfig], bool] | None = None
    trains: bool = False
    check: str | None = None

    def needs(self, active: dict[str, Stage]) -> list[str]:
        """The names of the inputs this stage takes under a config whose stages are ``active``."""
        return [name.rstrip("?") for name in self.inputs if not name.endswith("?") or name[:-1] in active]

    @property
    def module(self) -> str:
        """The module that holds the stage's function (its import closure is the stage's code version)."""
        return self.build.split(":", 1)[0]

    def function(self, which: str | None = None) -> Callable[..., Any]:
        module, name = (which or self.build).split(":", 1)
        return getattr(importlib.import_module(module), name)


POLICY_STAGES = tuple(
    Stage(p.name, p.build, ("preferences", "base", "sft", *p.inputs), p.name, _listed(p.name), trains=True)
    for p in POLICIES
)
OPTIONAL_POLICIES = tuple(f"{p.name}?" for p in POLICIES)  # evaluation and export take whichever the config lists

STAGES = (
    Stage("world", "alignment.data.world:world_stage", section="world", when=_synthetic_world),
    Stage("world", "alignment.data.facts:facts_stage", section="facts", when=_real_facts),
    Stage("data", "alignment.data.run_data:data_stage", ("world",), "data", _world_data),
    Stage("data", "alignment.data.run_data:data_stage", (), "data", _own_data),
    Stage("frontier", "alignment.evaluation.frontier:frontier_stage", ("world", "base"), "frontier", _real_facts),
    Stage("data", "alignment.evaluation.knowledge:knowledge_stage", ("world", "frontier"), "data", _real_facts),
    Stage(
        "base",
        "alignment.models.tiny_base:base_stage",
        ("world",),
        "model",
        _tiny_base,
        check="alignment.models.tiny_base:same_world",
    ),
    Stage("base", "alignment.models.pretrained:pretrained_stage", (), "model", _given_base),
    Stage("sft", "alignment.methods.sft:sft_stage", ("data", "base"), section="sft", trains=True),
    Stage("preferences", "alignment.data.run_data:preferences_stage", ("data",), "data", _constructed_pairs),
    Stage(
        "preferences", "alignment.evaluation.probe_pairs:pairs_stage", ("data", "base", "sft"), "probe", _probe_pairs
    ),
    Stage("reward", "alignment.methods.reward:reward_stage", ("preferences", "base"), section="reward", trains=True),
    Stage(
        "reference",
        "alignment.methods.reference:reference_stage",
        ("preferences", "base", "sft"),
        "dpo",
        _stored_reference,
    ),
    *POLICY_STAGES,
    # Real facts: the base's frontier already says which held-out questions are known; no probe of the SFT model
    Stage("probe", "alignment.evaluation.probe:probe_stage", ("data", "base", "sft"), "probe", _synthetic_world),
    Stage(
        "evaluate",
        "alignment.evaluation.evaluate:evaluate_stage",
        ("data", "base", "sft", "reward", *OPTIONAL_POLICIES, "probe?"),
        section="eval",
    ),
    Stage("report", "alignment.evaluation.report:report_stage", ("evaluate",)),
    Stage("export", "alignment.models.export:export_stage", ("base", "sft", *OPTIONAL_POLICIES)),
)
PIPELINE = ("report", "export")  # what a whole run builds: the evaluation's report and the exported policy


def stages(cfg: RunConfig) -> dict[str, Stage]:
    """The stages this config runs, by name (of alternatives, the one whose ``when`` holds)."""
    active: dict[str, Stage] = {}
    for stage in STAGES:
        if stage.when is None or stage.when(cfg):
            if stage.name in active:
                raise RuntimeError(f"two stages named {stage.name!r} apply to this config")
            active[stage.name] = stage
    return active


def plan(cfg: RunConfig, targets: Iterable[str], given: Iterable[str] = ()) -> list[Stage]:
    """The stages that produce ``targets``, each after its inputs, in the order the inputs are declared.

    A ``given`` value is not built; its inputs are planned only if it declares a check against them.
    """
    active, given = stages(cfg), set(given)
    order: list[Stage] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise RuntimeError(f"stage graph cycle: {' -> '.join((*path, name))}")
        if any(s.name == name for s in order):
            return
        stage = active[name]
        if name not in given or stage.check:
            for needed in stage.needs(active):
                visit(needed, (*path, name))
        order.append(stage)

    for target in targets:
        visit(target, ())
    return order


def build_stage(ctx: StageContext, stage: Stage, inputs: dict[str, Any]) -> Any:
    """Run one stage on its inputs under its own code version."""
    section = getattr(ctx.cfg, stage.section) if stage.section else None
    own = replace(
        ctx, code=code_version(stage.module), stage=stage.name, inputs=inputs, entry=stage.build, section=stage.section
    )
    return stage.function()(section, own, **inputs)


Execute = Callable[[Stage, dict[str, Any]], Any]


def run(cfg: RunConfig, execute: Execute, targets: Iterable[str] = PIPELINE, given: dict | None = None) -> dict:
    """Walk the plan for ``targets``: ``execute(stage, inputs)`` builds each value not ``given``; a given
    value is checked against its inputs where its stage declares a check. Returns every value by name."""
    values: dict[str, Any] = dict(given or {})
    active = stages(cfg)
    order = plan(cfg, targets, values)
    pin(stage.module for stage in order)  # an edit during the run is caught, never stored under either version
    for stage in order:
        inputs = {name: values[name] for name in stage.needs(active) if name in values}
        if stage.name in values:
            if stage.check:
                stage.function(stage.check)(values[stage.name], **inputs)
        else:
            values[stage.name] = execute(stage, inputs)
    return values


def run_local(ctx: StageContext, targets: Iterable[str] = PIPELINE, given: dict | None = None) -> dict:
    """The pipeline without orchestration: every planned stage in this process, in order."""
    return run(ctx.cfg, lambda stage, inputs: build_stage(ctx, stage, inputs), targets, given)


def up_to_date(ctx: StageContext, targets: Iterable[str] = PIPELINE) -> dict | None:
    """Every value of the plan when all its artifacts are already in the store (nothing would run), else None."""
    try:
        return run_local(replace(ctx, build=False, progress=lambda event: None), targets)
    except NotInStore:
        return None


def resolve_given(store: ArtifactStore, cfg: RunConfig, target: str, refs: dict[str, str]) -> dict[str, Artifact]:
    """The artifacts a run of ``target`` starts from: ``refs`` maps stage names to artifact ids or ``"latest"``.

    Explicit ids come first, and each given artifact brings the artifacts it was built from (read from its
    manifest); ``"latest"`` fills only what is still open. Two given artifacts built on different versions of
    the same input are an error. Refs that ``target`` does not need are ignored.
    """
    order = [stage.name for stage in plan(cfg, [target])]
    needed = set(order)
    given: dict[str, Artifact] = {}

    def add(name: str, art: Artifact, why: str) -> None:
        if name in given:
            if given[name].id != art.id:
                raise ValueError(
                    f"{why} uses {name} {art.id}, but {given[name].id} is also given: pick artifacts built on the "
                    f"same {name}"
                )
            return
        given[name] = art
        for input_name, value in art.manifest.get("inputs", {}).items():
            if input_name in needed and input_name != target and not is_dataset_ref(value):
                add(input_name, store.load(value), art.id)

    # explicit ids first; of the "latest" refs the most downstream first, so an SFT model brings its own base
    ordered = sorted(
        refs.items(), key=lambda item: (item[1] == "latest", -order.index(item[0]) if item[0] in needed else 0)
    )
    for name, ref in ordered:
        if name in needed and not (ref == "latest" and name in given):
            add(name, store.resolve(ref, name), f"{name} {ref}")
    return given
