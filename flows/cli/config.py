"""`alignment check` (also `validate`: every check a run makes before any work) and `alignment config` (every key
with its value, default and description)."""

from __future__ import annotations

import argparse

from alignment.config.loading import load_config
from flows.cli.common import check_before_work, config_args, store_arg


def add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        aliases=["validate"],
        help="check a config, this machine's compute and every data file, without training",
    )
    config_args(p)
    store_arg(p)
    p.set_defaults(func=cmd_check)


def add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="every config key with its value, default and description")
    config_args(p)
    p.add_argument("--defaults", action="store_true", help="the built-in defaults instead of a config file")
    p.add_argument("--changed", action="store_true", help="only the keys whose value differs from the default")
    p.add_argument("--markdown", action="store_true", help="as Markdown tables (docs/config.md is --defaults)")
    p.set_defaults(func=cmd_config)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    check_before_work(cfg, str(args.config))
    print(f"{args.config}: ok")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Every config key with its value, default and description (``--defaults``: the built-in config)."""
    from alignment.config.reference import keys, render_markdown, render_text
    from alignment.config.run import RunConfig

    cfg = RunConfig() if args.defaults else load_config(args.config, args.overrides)
    rows = keys(cfg, expand_unset=args.markdown)
    print(render_markdown(rows) if args.markdown else render_text(rows, changed_only=args.changed), end="")
    return 0
