"""`alignment export`: a policy (any of the registry's) merged into its base, a standalone model for serving."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from alignment.config.base import ConfigError
from alignment.config.loading import load_config
from alignment.config.policies import POLICY_NAMES
from alignment.core.store import CorruptArtifact, stage_of
from flows.cli.common import existing_store, override_arg

if TYPE_CHECKING:
    from alignment.core.store import Artifact, ArtifactStore


def add_export(sub: argparse._SubParsersAction) -> None:
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
    override_arg(p, "override a config value (repeatable)")
    p.set_defaults(func=cmd_export)


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

    store = ArtifactStore(existing_store(args.store, "nothing to export"))
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
        if stage_of(Path(ref).name) not in POLICY_NAMES:  # named for its stage: tell before any lookup
            raise ValueError(f"{ref} is not a policy artifact (one of {', '.join(POLICY_NAMES)})")
        return store.load(ref)
    return store.resolve(ref, name) if name is not None else store.latest(*POLICY_NAMES)
