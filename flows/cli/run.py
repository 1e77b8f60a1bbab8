"""`alignment run`: the whole pipeline as a Prefect flow (answered from the store when nothing changed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignment.config.loading import load_config
from alignment.config.run import RunConfig
from flows.cli.common import check_before_work, config_args, show_progress, store_arg


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the whole pipeline as a Prefect flow")
    config_args(p)
    store_arg(p)
    p.add_argument(
        "--always-run-flow",
        action="store_true",
        help="start the Prefect flow (and publish its run artifacts) even when every artifact is already built",
    )
    p.set_defaults(func=cmd_run)


def _up_to_date(cfg: RunConfig) -> dict[str, str] | None:
    """The run's outcome when every artifact it needs is already in the store (nothing to run)."""
    from alignment import graph
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore

    values = graph.up_to_date(StageContext(cfg, ArtifactStore(cfg.store.root)))
    return {name: str(values[name].path.resolve()) for name in ("evaluate", "report", "export")} if values else None


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    check_before_work(cfg, str(args.config))  # before Prefect or any model starts
    out = None if args.always_run_flow else _up_to_date(cfg)
    if out is not None:
        print(f"up to date: every artifact is already in {cfg.store.root}; nothing to run (--always-run-flow runs it)")
    else:
        from flows.pipeline import alignment_pipeline

        show_progress()
        out = alignment_pipeline(cfg)
    print(f"evaluation: {out['evaluate']}")
    print(f"report: {Path(out['report']) / 'report.md'}")
    print(f"exported policy: {Path(out['export']) / 'model'}")
    from alignment.evaluation.report import headline, read_metrics

    print("\n" + "\n".join(headline(read_metrics(Path(out["evaluate"])))))
    return 0
