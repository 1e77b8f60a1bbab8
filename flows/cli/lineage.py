"""`alignment lineage` (the tree an artifact was built from) and `alignment verify` (every artifact re-hashed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.cli.common import confine_ref, existing_store


def add_lineage(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lineage", help="print the tree an artifact was built from (artifacts, data hashes, configs)")
    p.add_argument(
        "artifact", help="artifact id (e.g. dpo-1a2b...), artifact directory, or 'latest' (the newest export)"
    )
    p.add_argument("--store", default=None, help="artifact store root (default: the directory's own store, else runs)")
    p.add_argument("--no-metrics", action="store_true", help="leave out each artifact's metrics")
    p.set_defaults(func=cmd_lineage)


def add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="re-hash every artifact of a store against its manifest (exit 1 if any is broken)"
    )
    p.add_argument("--store", default="runs", help="artifact store root (default: %(default)s)")
    p.set_defaults(func=cmd_verify)


def cmd_lineage(args: argparse.Namespace) -> int:
    from alignment.core.lineage import lineage, render_text
    from alignment.core.store import MANIFEST, ArtifactStore

    confine_ref("argument ARTIFACT", args.artifact)
    store = args.store
    if store is None:  # an artifact directory names its own store (<store>/<stage>/<id>); an id: ./runs
        given = Path(args.artifact)
        store = str(ArtifactStore.holding(given).root) if (given / MANIFEST).is_file() else "runs"
    store = ArtifactStore(existing_store(store, f"no artifact {args.artifact} to trace"))
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
    found = ArtifactStore(existing_store(args.store, "nothing to verify")).verify_all()
    for artifact_id, problem in found.items():
        print(f"{artifact_id}: {problem or 'ok'}")
    broken = [a for a, problem in found.items() if problem]
    print(f"{len(found)} artifacts in {args.store}, {len(broken)} broken (the next run that needs one rebuilds it)")
    return 1 if broken else 0
