"""Which paths a run may read or write, when the worker confines them.

A deployment's form accepts paths (the store, data files, a model directory, a chat template, the retrain's
data location). On a shared worker that would let anyone who can start a run read or write anywhere the
worker can. A worker started with ``ALIGNMENT_ALLOWED_ROOTS`` (directories separated by ``:``) only accepts
paths under those roots; a run naming another is refused before anything is opened: before its data is
validated, before the store is read (so an up-to-date run is checked too), before its first stage. Unset: no
confinement (a user's own machine).
"""

from __future__ import annotations

import os
from pathlib import Path

from alignment.config.base import ConfigError
from alignment.config.model import looks_local
from alignment.config.run import RunConfig

VARIABLE = "ALIGNMENT_ALLOWED_ROOTS"


def allowed_roots() -> list[Path] | None:
    """The roots from the worker's environment, resolved; None when it confines nothing."""
    value = os.environ.get(VARIABLE, "").strip()
    if not value:
        return None
    return [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip()]


def run_paths(cfg: RunConfig, data_dir: Path | None = None) -> dict[str, Path]:
    """Every local path a run config names, by dotted key (hub ids and unset keys left out)."""
    found = {"store.root": cfg.store.root}
    candidates = {"model.name_or_path": cfg.model.name_or_path, "model.chat_template": cfg.model.chat_template}
    candidates["compute.accelerate_config"] = cfg.compute.accelerate_config
    for name in type(cfg.data).model_fields:
        source = getattr(cfg.data, name)
        if source is not None and hasattr(source, "path"):
            candidates[f"data.{name}.path"] = str(source.path)
    for key, value in candidates.items():
        if value and looks_local(value):
            found[key] = Path(value)
    if data_dir is not None:
        found["retrain.data_dir"] = Path(data_dir)
    return found


def confine(cfg: RunConfig, data_dir: Path | None = None, roots: list[Path] | None = None) -> None:
    """Refuse a run whose paths leave the allowed roots (``roots``, default: the worker's environment)."""
    confine_paths({f"key '{key}'": path for key, path in run_paths(cfg, data_dir).items()}, roots)


def confine_paths(paths: dict[str, str | Path], roots: list[Path] | None = None) -> None:
    """Refuse any of ``paths`` outside the allowed roots (``roots``, default: the worker's environment), each named
    by what gave it ("option '--store'", "parameter 'out'"): what a command or flow reads or writes besides a run
    config (a store, an output page)."""
    roots = roots if roots is not None else allowed_roots()
    if roots is None:
        return
    for what, path in paths.items():
        path = Path(path)
        resolved = path.expanduser().resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
            raise ConfigError(
                f"{what}: {path} is outside the paths this worker allows ({VARIABLE}: "
                f"{os.pathsep.join(str(r) for r in roots)})"
            )
