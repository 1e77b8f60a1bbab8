"""`alignment ablation` (several configs compared) and `alignment seeds` (one config on several world seeds)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alignment.config.base import ConfigError
from alignment.config.loading import load_config
from flows.cli.common import check_before_work, config_args, override_arg, show_progress, store_arg


def add_ablation(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablation", help="run several configs and compare them (mismatched knowledge)")
    p.add_argument(
        "configs",
        nargs="+",
        help="run configs, e.g. configs/tiny.yaml configs/tiny-idk.yaml configs/tiny-mismatch.yaml",
    )
    override_arg(p, "override applied to every config (repeatable)")
    store_arg(p)
    p.add_argument("--out", default="runs/ablation.md", help="comparison page (default: %(default)s)")
    p.set_defaults(func=cmd_ablation)


def add_seeds(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seeds", help="run a config on several world seeds: spread of every metric, bounds checked")
    config_args(p)
    store_arg(p)
    p.add_argument("--seeds", default="0-4", help="world seeds, e.g. 0-4 or 0,2,5 (default: %(default)s)")
    p.add_argument("--out", default="runs/seeds.md", help="the seeds page (default: %(default)s)")
    p.set_defaults(func=cmd_seeds)


def cmd_ablation(args: argparse.Namespace) -> int:
    configs = {}
    for path in args.configs:
        cfg = load_config(path, args.overrides)
        check_before_work(cfg, str(path))
        name = Path(path).stem
        if name in configs:
            raise ConfigError(f"{path}: two configs named {name!r}; rename one")
        configs[name] = cfg
    from flows.pipeline import ablation_flow

    show_progress()
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
        check_before_work(cfg, f"{args.config} (world.seed={seed})")
        configs[str(seed)] = cfg
    from flows.pipeline import seeds_flow

    show_progress()
    command = " ".join(["alignment seeds", str(args.config), "--seeds", args.seeds])
    command += "".join(f" --set '{o}'" for o in args.overrides or [])
    out, failed = seeds_flow(configs, args.out, command)
    print(f"seeds page: {out}")
    for text in failed:
        print(f"bound not met on some seed: {text}", file=sys.stderr)
    return 1 if failed else 0


def add_operating_point(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "operating-point",
        help="where a real-facts recipe puts each model on the preference role (never the held-out one)",
    )
    config_args(p)
    store_arg(p)
    p.set_defaults(func=cmd_operating_point)


def cmd_operating_point(args: argparse.Namespace) -> int:
    from alignment import graph
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore
    from alignment.studies.operating_point import preference_role, table, targets

    cfg = load_config(args.config, args.overrides)
    try:
        names = targets(cfg)
    except ValueError as exc:
        raise ConfigError(f"{args.config}: {exc}") from None
    check_before_work(cfg, str(args.config))
    ctx = StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda event: None)
    print(table(preference_role(ctx, graph.run_local(ctx, names))))
    return 0
