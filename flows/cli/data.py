"""`alignment world` (the synthetic world's data files) and `alignment facts` (the real-facts questions, reference
text and data card): files written, nothing run."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignment.config.base import ConfigError
from alignment.config.loading import load_config, load_section
from flows.cli.common import config_args, write_files


def add_facts(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("facts", help="write the real-facts questions, reference text and data card for a config")
    _files_args(p, required=True, help="directory for the files")
    p.set_defaults(func=cmd_facts)


def add_world(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="write the synthetic world's data files for a config")
    _files_args(p, default="data", help="output directory (default: %(default)s)")
    p.set_defaults(func=cmd_world)


def _files_args(p: argparse.ArgumentParser, **out: object) -> None:
    """A command that writes files from a config: the config, --set, --out (as ``out`` says) and --force."""
    config_args(p)
    p.add_argument("--out", **out)
    p.add_argument("--force", action="store_true", help="replace files already there that differ")


def cmd_world(args: argparse.Namespace) -> int:
    from alignment.data.world import write_world

    cfg = load_config(args.config, args.overrides)
    counts = write_files(Path(args.out), lambda tmp: write_world(cfg.world, tmp), args.force)
    for name, n in counts.items():
        print(f"{Path(args.out) / name}: {n} lines")
    return 0


def cmd_facts(args: argparse.Namespace) -> int:
    """The files need the ``facts`` section alone (the run they are for checks the rest when it loads)."""
    from alignment.data.facts import write_facts

    facts = load_section("facts", args.config, args.overrides)
    if facts is None:
        raise ConfigError(f"{args.config}: no 'facts' section: nothing to build (see configs/real-facts.yaml)")
    for name, n in write_files(Path(args.out), lambda tmp: write_facts(facts, tmp), args.force).items():
        print(f"{name}: {n}")
    print(f"data card: {Path(args.out) / 'DATA_CARD.md'}")
    return 0
