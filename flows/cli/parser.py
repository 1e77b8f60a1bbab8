"""The `alignment` command's parser and entry point: one subcommand per module of ``flows/cli/``, named for it."""

from __future__ import annotations

import argparse
import sys

from alignment.config.base import ConfigError
from alignment.core.store import StoreFull
from alignment.data.records import DataError
from flows.cli import bench, chat, config, data, export, fetch, lineage, retrain, run, studies

DESCRIPTION = "The `alignment` command: run the pipeline, generate the world's data, validate a config."
# Each adds its subcommand; in this order `alignment --help` lists them.
COMMANDS = (
    *(run.add_run, studies.add_ablation, studies.add_seeds, studies.add_operating_point),
    *(retrain.add_retrain, retrain.add_promoted),
    *(export.add_export, chat.add_chat, lineage.add_lineage, fetch.add_fetch, lineage.add_verify, bench.add_bench),
    *(config.add_check, config.add_config, data.add_facts, data.add_world),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alignment", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
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
