"""The `alignment` command's parser and entry point: one subcommand per module of ``flows/cli/``, named for it."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from alignment.config.base import ConfigError
from alignment.core.store import StoreFull
from alignment.data.records import DataError
from flows.cli import bench, chat, config, data, export, fetch, lineage, retrain, run, studies
from flows.cli.temporary_server import temporary_server_in_own_group

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
        with termination_exits(), temporary_server_in_own_group():
            return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: the run was reported Crashed and its processes stopped on the way out
        print("interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended
    except (ConfigError, DataError, StoreFull) as exc:
        print(f"error: {exc.strerror if isinstance(exc, StoreFull) else exc}", file=sys.stderr)
        return 2


@contextmanager
def termination_exits() -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler's stop) and SIGHUP (a closed terminal) end a command as Ctrl-C does, through
    Python's exit path, with status 128 + the signal's number (143, 129), as the default action reports it: the
    temporary Prefect server is stopped at exit and a launched stage's processes are stopped, where the default
    action would leave both running. Inside a flow, Prefect's own SIGTERM handler marks the run Crashed first and
    then calls this one. The previous handlers are restored after; off the main thread (where no handler can be set)
    nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_with(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, exit_with) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
