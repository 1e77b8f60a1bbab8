"""`alignment retrain` (champion/challenger on new data files) and `alignment promoted` (its champion and
decisions)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignment.config.loading import load_config
from flows.cli.common import check_before_work, config_args, existing_store, show_progress, store_arg


def add_retrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="champion/challenger retraining on new data files (the scheduled flow)")
    config_args(p)
    store_arg(p)
    p.add_argument(
        "--data-dir", type=Path, help="where new demonstrations/*.jsonl and preferences/*.jsonl land (retrain.data_dir)"
    )
    p.add_argument("--name", help="promoted pointer name (retrain.name)")
    p.add_argument("--min-win-rate", type=float, help="gate: gold win-rate vs the champion at least this")
    p.add_argument("--max-prudence-drop", type=float, help="gate: prudence may fall by at most this")
    p.add_argument("--max-accuracy-drop", type=float, help="gate: accuracy on known may fall by at most this")
    p.set_defaults(func=cmd_retrain)


def add_promoted(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("promoted", help="show the promoted policy and the latest retrain decisions")
    p.add_argument("--store", default="runs", help="artifact store root (default: %(default)s)")
    p.add_argument("--name", default="policy", help="promoted pointer name (default: %(default)s)")
    p.add_argument("--last", type=int, default=10, help="decisions to list (default: %(default)s)")
    p.set_defaults(func=cmd_promoted)


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
    check_before_work(cfg, str(args.config), rcfg.data_dir)
    scan_incoming(rcfg.data_dir)  # bad files are reported before Prefect or any model starts
    from flows.retrain import retrain_flow

    show_progress()
    decision = retrain_flow(cfg, rcfg)
    print(f"{'promoted' if decision['promoted'] else 'not promoted'}: {decision['reason']}")
    if decision.get("record"):
        print(f"decision: {decision['record']}")
    return 0


def cmd_promoted(args: argparse.Namespace) -> int:
    from alignment.core.store import ArtifactStore
    from alignment.studies.retrain import PromotionLog

    log = PromotionLog(ArtifactStore(existing_store(args.store, "no promoted policy to show")), args.name)
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
