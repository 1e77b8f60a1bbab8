"""The stage graph: declared once, order from the inputs, cache keys from real imports, light to import."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alignment import graph
from alignment.config.loading import load_config
from alignment.core.code_version import source_hash

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "alignment"


def test_order_follows_from_the_inputs():
    order = [s.name for s in graph.plan(load_config(None), ["report"])]
    assert order == [
        *("world", "data", "base", "sft", "preferences", "reward", "reference", "dpo", "probe", "evaluate", "report")
    ]
    for i, stage in enumerate(graph.plan(load_config(None), ["report"])):
        assert all(order.index(needed) < i for needed in stage.needs(graph.stages(load_config(None))))
    probe_pairs = load_config(ROOT / "configs/tiny-probe-pairs.yaml")
    assert graph.stages(probe_pairs)["preferences"].build == "alignment.evaluation.probe_pairs:pairs_stage"
    assert [s.name for s in graph.plan(probe_pairs, ["reward"])] == [
        "world",
        "data",
        "base",
        "sft",
        "preferences",
        "reward",
    ]
    assert [s.name for s in graph.plan(load_config(None), ["reward"])] == [
        "world",
        "data",
        "preferences",
        "base",
        "reward",
    ]


def test_a_given_artifact_is_not_rebuilt_and_only_a_checks_inputs_are_planned_for_it():
    cfg = load_config(None)
    plan = [s.name for s in graph.plan(cfg, ["dpo"], given=["sft", "base"])]
    assert plan == ["world", "data", "preferences", "base", "sft", "reference", "dpo"]  # world: the base's check
    plan = [s.name for s in graph.plan(cfg, ["dpo"], given=["sft", "base", "preferences"])]
    assert plan == ["preferences", "world", "base", "sft", "reference", "dpo"]
    inline = load_config(None, ["dpo.precompute_ref_log_probs=false"])  # no stored reference: DPO computes it
    assert [s.name for s in graph.plan(inline, ["dpo"], given=["sft", "base", "preferences"])][-2:] == ["sft", "dpo"]


def _copy_package(tmp_path: Path) -> Path:
    copy = tmp_path / "alignment"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_stages_code_version_changes_with_what_it_imports_and_only_that(tmp_path):
    copy = _copy_package(tmp_path)
    before = {stage.build: source_hash(stage.module, copy) for stage in graph.STAGES}

    def edit(module: str) -> dict[str, str]:
        with (copy / module).open("a") as fh:
            fh.write("\n# edited\n")
        return {stage.build: source_hash(stage.module, copy) for stage in graph.STAGES}

    def changed(after: dict[str, str], was: dict[str, str]) -> set[str]:
        return {build.split(":")[1] for build in was if after[build] != was[build]}

    after_modeling = edit("models/modeling.py")  # imported (inside functions) by every stage that loads a model
    expected = {"pretrained_stage", "sft_stage", "reward_stage", "dpo_stage", "probe_stage", "pairs_stage"}
    expected |= {"evaluate_stage", "export_stage", "rloo_stage", "reference_stage", "kto_stage", "grpo_stage"}
    expected |= {"frontier_stage"}  # the real-facts frontier: it probes the model as given
    assert changed(after_modeling, before) == expected
    after_plots = edit("evaluation/plots.py")  # only the report draws plots: a plot change re-runs no model
    assert changed(after_plots, after_modeling) == {"report_stage"}
    after_probe = edit("evaluation/probe.py")  # the evaluation imports the probe's agreement
    probers = {"probe_stage", "pairs_stage", "evaluate_stage", "frontier_stage"}
    assert changed(after_probe, after_plots) == probers
    after_dpo = edit("methods/dpo.py")  # a method module: its stage and the stage built on its trainer
    assert changed(after_dpo, after_probe) == {"dpo_stage", "reference_stage"}
    after_kto = edit("config/kto.py")  # a policy's config section: that policy alone
    assert changed(after_kto, after_dpo) == {"kto_stage"}


def test_editing_the_graph_or_the_policy_registry_rebuilds_nothing(tmp_path):
    # the map is in no stage's code version: a new row (a new method) re-keys no artifact that exists
    copy = _copy_package(tmp_path)
    before = {stage.build: source_hash(stage.module, copy) for stage in graph.STAGES}
    for module in ("graph.py", "config/policies.py", "config/run.py", "config/loading.py"):
        with (copy / module).open("a") as fh:
            fh.write("\n# a new row\n")
    assert {stage.build: source_hash(stage.module, copy) for stage in graph.STAGES} == before


def _append_comment(copy: Path, modules: list[Path]) -> None:
    for path in modules:
        with (copy / path.relative_to(PACKAGE)).open("a") as fh:
            fh.write("\n# a maintainer's edit: reworded, mended, nothing computed differently\n")


def test_editing_the_infrastructure_changes_no_stages_code_version(tmp_path):
    # core/ stores, locks, launches, reports on, confines and checks: it computes no output
    copy = _copy_package(tmp_path)
    before = {stage.build: source_hash(stage.module, copy) for stage in graph.STAGES}
    core = sorted((PACKAGE / "core").rglob("*.py"))
    assert {p.name for p in core} >= {"store.py", "context.py", "launch.py", "progress.py", "compute.py"}
    _append_comment(copy, core)
    assert {stage.build: source_hash(stage.module, copy) for stage in graph.STAGES} == before
    assert source_hash(None, copy) == source_hash(None, PACKAGE)  # the default version (no module) too


def test_the_store_format_is_in_every_stages_code_version(tmp_path, monkeypatch):
    from alignment.core import code_version

    before = {stage.build: source_hash(stage.module) for stage in graph.STAGES}
    monkeypatch.setattr(code_version, "STORE_FORMAT", code_version.STORE_FORMAT + 1)
    after = {stage.build: source_hash(stage.module) for stage in graph.STAGES}
    assert all(after[build] != before[build] for build in before)


_IDS = """
import json, sys
import alignment
from alignment import graph
from alignment.config.loading import load_config
from alignment.core.context import NotInStore, StageContext
from alignment.core.store import Artifact, ArtifactStore

assert alignment.__file__.startswith(sys.argv[3]), alignment.__file__  # the edited copy, not the checkout
cfg = load_config(sys.argv[1], [f"store.root={sys.argv[2]}"])
try:
    values = graph.run_local(StageContext(cfg, ArtifactStore(cfg.store.root), build=False, progress=lambda _: None))
    print(json.dumps({name: art.id for name, art in values.items() if isinstance(art, Artifact)}))
except NotInStore as missing:
    print(json.dumps({"missing": missing.args[0]}))
"""


@pytest.mark.slow
def test_a_finished_run_stays_up_to_date_after_an_infrastructure_edit_and_a_method_edit_rebuilds(tmp_path):
    """The promise to users: mending alignment/core/ never rebuilds their artifacts; editing DPO rebuilds DPO (and
    its stored reference, built on DPO's trainer) and what follows, nothing before."""
    from alignment.config.loading import load_config
    from alignment.core.context import StageContext
    from alignment.core.store import Artifact, ArtifactStore

    store = tmp_path / "runs"
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={store}"])
    built = graph.run_local(StageContext(cfg, ArtifactStore(store), progress=lambda _: None))
    ids = {name: art.id for name, art in built.items() if isinstance(art, Artifact)}

    def ids_under(copy: Path) -> dict:
        args = [sys.executable, "-c", _IDS, str(ROOT / "configs/micro.yaml"), str(store), str(copy)]
        out = subprocess.run(args, cwd=copy.parent, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.splitlines()[-1])

    copy = _copy_package(tmp_path / "edited")
    _append_comment(copy, sorted((PACKAGE / "core").rglob("*.py")))
    assert ids_under(copy) == ids  # up to date: the same artifact ids, nothing to build
    _append_comment(copy, [PACKAGE / "methods" / "dpo.py"])
    assert ids_under(copy) == {"missing": "reference"}  # every stage before it is still served from the store
    assert sorted(p.parent.name for p in store.rglob("manifest.json")) == sorted(ids.values())


def test_a_package_init_is_in_the_code_version_of_every_stage_that_imports_the_package(tmp_path):
    copy = _copy_package(tmp_path)
    before = {stage.build: source_hash(stage.module, copy) for stage in graph.STAGES}
    with (copy / "methods" / "__init__.py").open("a") as fh:
        fh.write("\nWEIGHTS = 2  # code in a package __init__ runs on every import of a module below it\n")
    after = {stage.build: source_hash(stage.module, copy) for stage in graph.STAGES}
    changed = {build.split(":")[0] for build in before if after[build] != before[build]}
    assert changed == {
        "alignment.methods.sft",
        "alignment.methods.reward",
        "alignment.methods.reference",
        "alignment.methods.dpo",
        "alignment.methods.rloo",
        "alignment.methods.kto",
        "alignment.methods.grpo",
    }


def test_the_import_closure_follows_packages_and_skips_annotation_only_imports(tmp_path):
    from alignment.core.code_version import import_closure

    pkg = tmp_path / "alignment"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from alignment.helpers import X\n")
    (pkg / "helpers.py").write_text("X = 1\n")
    (pkg / "typed.py").write_text("")
    (pkg / "stage.py").write_text(
        "from typing import TYPE_CHECKING\nfrom alignment import sub\nif TYPE_CHECKING:\n    import alignment.typed\n"
    )
    found = {p.relative_to(pkg).as_posix() for p in import_closure("alignment.stage", pkg)}
    assert found == {"__init__.py", "stage.py", "sub/__init__.py", "helpers.py"}


def test_no_hand_kept_list_of_stage_modules_or_stage_order_remains():
    sources = {p: p.read_text() for p in [*PACKAGE.rglob("*.py"), *(ROOT / "flows").glob("*.py")]}
    assert not [p.name for p, text in sources.items() if "STAGE_CODE" in text]
    declared = [p.name for p, text in sources.items() if '"alignment.methods.sft:sft_stage"' in text]
    assert declared == ["graph.py"]


def test_stage_modules_import_no_torch_so_a_cached_run_stays_fast():
    code = (
        "import sys; from alignment import graph; [s.function() for s in graph.STAGES]; import flows.pipeline; "
        "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules); "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _positional(fn: ast.FunctionDef) -> int:
    args = fn.args
    return len(args.posonlyargs) + len(args.args) - (1 if args.args and args.args[0].arg in ("self", "cls") else 0)


@pytest.mark.parametrize("package", ["alignment", "flows", "tests"])
def test_functions_take_few_positional_parameters_and_need_no_fmt_skip(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        text = path.read_text()
        assert "fmt" + ": skip" not in text, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert _positional(node) <= 6, f"{path.name}:{node.lineno} {node.name}"


def test_the_compute_settings_that_change_numbers_are_in_every_id_and_the_others_are_not(micro):
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore

    def sft_id(*overrides: str) -> str:
        cfg = micro(*overrides)
        return StageContext(cfg, ArtifactStore(cfg.store.root), code="v").artifact_id("sft", {"lr": 1}, {"base": "b"})

    plain = sft_id()
    assert sft_id("compute.bf16=true") != plain and sft_id("compute.device=auto") != plain
    assert sft_id("compute.threads=1") == plain and sft_id("compute.checkpoint_steps=5") == plain
    assert sft_id("seed=1") != plain


def test_an_artifact_whose_code_changed_on_disk_during_the_run_is_not_stored(tmp_path):
    """A run pins every stage's code version when it begins; a stage whose source then changed on disk (modules
    imported before the edit and after it, mixed) raises instead of storing an artifact under either version."""
    from dataclasses import replace

    from alignment.core.code_version import CodeChanged, code_version
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore

    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={tmp_path}"])
    ctx = StageContext(cfg, ArtifactStore(tmp_path), progress=lambda _: None)
    entry = "alignment.data.world:world_stage"

    def build(tmp):
        (tmp / "out.txt").write_text("x")
        return {}

    stale = replace(ctx, code="0.1.0+000000000000", stage="world", entry=entry)  # pinned before an edit
    with pytest.raises(CodeChanged, match=r"the code of alignment.data.world \(or of a module it imports\) changed"):
        stale.materialize("world", {"n": 1}, {}, build)
    assert not list(tmp_path.glob("world/*")) and not list((tmp_path / ".tmp").glob("*"))
    current = replace(stale, code=code_version("alignment.data.world"))
    assert (current.materialize("world", {"n": 1}, {}, build).path / "out.txt").read_text() == "x"
