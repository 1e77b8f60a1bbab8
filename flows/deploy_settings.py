"""The deployments' settings, read by `prefect deploy` as the first build step of prefect.yaml.

Prefect's `{{ $VAR }}` has no default and turns an unset variable into an empty string (an empty store path,
an `Unknown schedule type` for an empty cron). This step gives every setting a default where one is sensible
and otherwise stops the deploy, before anything is deployed, with a message that names the variable.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

REQUIRED = {
    "ALIGNMENT_STORE": "the artifact store: a directory every worker can read and write, e.g. a shared disk",
    "ALIGNMENT_INCOMING": "where new data files land for the scheduled retrain (a directory the worker can read)",
}
DEFAULT_CRON = "0 3 * * *"
DEFAULT_IMAGE = "alignment-pipeline:latest"  # `make image`


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"true", "1", "yes"}:
        return True
    if value in {"false", "0", "no"}:
        return False
    raise ValueError(f"prefect deploy: {name}={value!r} is neither true nor false")


def _whole(name: str, default: int, minimum: int, what: str, rule: str | None = None) -> int:
    """The whole number in ``name`` (``default`` where unset), at least ``minimum``; else an error naming it as
    ``what``, with ``rule`` (default: "a whole number, at least <minimum>")."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        rule = rule or f"a whole number, at least {minimum}"
        raise ValueError(f"prefect deploy: {name}={value!r} is not {what} ({rule})")
    return number


def deploy_settings() -> dict[str, Any]:
    """The settings prefect.yaml templates as `{{ settings.<name> }}`: ``repo`` and ``ref`` (what the worker
    clones; default: this checkout's origin, or its directory, and branch), ``store`` and ``incoming``
    (required), ``cron`` (the retrain's schedule, UTC; default 03:00 daily), ``active`` (default true), and for
    Docker and Kubernetes pools ``image`` (ALIGNMENT_IMAGE, default `make image`'s tag) and ``gpus``
    (ALIGNMENT_GPUS, GPUs per run, default 1); a process pool ignores the last two. Lost runs: ``heartbeat``
    (PREFECT_FLOWS_HEARTBEAT_FREQUENCY, seconds between a run's heartbeats, default 30, Prefect's minimum),
    ``missed_heartbeats`` (ALIGNMENT_MISSED_HEARTBEATS, silent heartbeats before a run is marked Crashed, default 3)
    and ``crash_retries`` (ALIGNMENT_CRASH_RETRIES, default 2), read by ``flows.automations``."""
    missing = [f"{name} ({why})" for name, why in REQUIRED.items() if not os.environ.get(name, "").strip()]
    if missing:
        raise ValueError(
            "prefect deploy: set " + "; ".join(missing) + ". `make deploy` sets them (STORE=..., INCOMING=...)."
        )
    store, incoming = (Path(os.environ[name]).expanduser() for name in REQUIRED)
    for name, path in zip(REQUIRED, (store, incoming), strict=True):
        if not path.is_absolute():
            raise ValueError(
                f"prefect deploy: {name}={str(path)!r} must be an absolute path (the worker's cwd differs)"
            )
    return {
        "repo": os.environ.get("ALIGNMENT_REPO") or _git("remote", "get-url", "origin") or str(Path.cwd()),
        "ref": os.environ.get("ALIGNMENT_REF") or _git("rev-parse", "--abbrev-ref", "HEAD") or "main",
        "store": str(store),
        "incoming": str(incoming),
        "cron": os.environ.get("ALIGNMENT_RETRAIN_CRON", "").strip() or DEFAULT_CRON,
        "active": _flag("ALIGNMENT_RETRAIN_ACTIVE", True),
        "image": os.environ.get("ALIGNMENT_IMAGE", "").strip() or DEFAULT_IMAGE,
        "gpus": _whole("ALIGNMENT_GPUS", 1, -1, "a GPU count", "a whole number; -1: all, Docker only"),
        "heartbeat": str(_whole("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", 30, 30, "a heartbeat period in seconds")),
        "missed_heartbeats": _whole("ALIGNMENT_MISSED_HEARTBEATS", 3, 2, "a count of missed heartbeats"),
        "crash_retries": _whole("ALIGNMENT_CRASH_RETRIES", 2, 0, "a count of retries"),
    }
