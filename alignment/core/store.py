"""The artifact store: one immutable directory per stage output, written atomically, with a manifest.

An artifact's id hashes (stage, config section, input ids, code version), so re-running an unchanged
stage finds its artifact and reuses it instead of training again. The manifest records every file's size,
modification time and sha256; an artifact is served only while its files match (a file whose size or time
changed is re-hashed). One that does not match, or whose manifest is missing or unreadable, is moved to
``<root>/.quarantine/`` with a warning and is built again.

What the code version covers, and the one constant that makes every artifact stale on purpose (``STORE_FORMAT``), is
``alignment.core.code_version``: editing this module (or anything else in ``alignment/core/``) rebuilds nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignment.core.code_version import STORE_FORMAT, code_version

MANIFEST = "manifest.json"
QUARANTINE = ".quarantine"
logger = logging.getLogger("alignment.core.store")


def artifact_id_pattern(*stages: str) -> str:
    """The regex of an artifact id (``ArtifactStore.artifact_id``): its stage (one of ``stages``; any without them),
    a dash and 16 hex digits of the hash."""
    stage = "[a-z]+" if not stages else stages[0] if len(stages) == 1 else f"({'|'.join(stages)})"
    return stage + "-[0-9a-f]{16}"


ARTIFACT_ID = artifact_id_pattern()
"""The regex of any artifact's id."""


def stage_of(artifact_id: str) -> str:
    """The stage an artifact id names (its part before the hash)."""
    return artifact_id.rsplit("-", 1)[0]


class StoreFull(OSError):
    """The store's disk filled up while an artifact was written; nothing of it was kept."""


class CorruptArtifact(RuntimeError):
    """An artifact whose files no longer match its manifest, or whose manifest is missing or unreadable."""


def file_records(directory: Path) -> dict[str, dict[str, Any]]:
    """Every file under ``directory`` but the manifest: relative path -> size, mtime_ns and sha256."""
    out = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        stat = path.stat()
        out[path.relative_to(directory).as_posix()] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": file_sha256(path),
        }
    return out


def read_verified(path: Path, full: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest of the artifact at ``path`` and why it cannot be served (None: it can; then the manifest is
    returned). Fast mode compares sizes and times and re-hashes only files whose time changed; ``full``
    re-hashes every file. Artifacts from before file records are accepted as they are."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return None, "its manifest is missing"
    except (OSError, ValueError) as exc:
        return None, f"its manifest is unreadable ({exc.__class__.__name__})"
    if not isinstance(manifest, dict) or "stage" not in manifest:
        return None, "its manifest is incomplete"
    for name, rec in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return None, f"{name} is missing"
        stat = file.stat()
        if stat.st_size != rec["size"]:
            return None, f"{name} has {stat.st_size} bytes, the manifest says {rec['size']}"
        if (full or stat.st_mtime_ns != rec["mtime_ns"]) and file_sha256(file) != rec["sha256"]:
            return None, f"{name} does not match its sha256"
    return manifest, None


def verify(path: Path, full: bool = False) -> str | None:
    """Why the artifact at ``path`` cannot be served (None: it can); see ``read_verified``."""
    return read_verified(path, full)[1]


def is_dataset_ref(value: str) -> bool:
    """Whether a manifest input names a dataset (``sha256:`` content id, ``hub:`` reference), not an artifact."""
    return value.startswith(("sha256:", "hub:"))


def file_sha256(path: Path) -> str:
    """Content hash of a file (hex sha256)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Artifact:
    """A finished stage output: its id, directory and manifest."""

    id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def stage(self) -> str:
        return self.manifest["stage"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    @property
    def built(self) -> tuple[str, int]:
        """When it was built, to order artifacts by: the manifest's creation time, then the manifest file's time."""
        return self.manifest.get("created_at", ""), (self.path / MANIFEST).stat().st_mtime_ns


class ArtifactStore:
    """A local directory of artifacts: ``<root>/<stage>/<id>/`` each with ``manifest.json``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def holding(cls, artifact_dir: Path | str) -> ArtifactStore:
        """The store an artifact directory (``<root>/<stage>/<id>``) belongs to."""
        return cls(Path(artifact_dir).resolve().parent.parent)

    @staticmethod
    def artifact_id(stage: str, config: Any, inputs: dict[str, str], version: str | None = None) -> str:
        """The content id: a hash of the stage, its config section, its input ids and the code version."""
        key = _canonical({"stage": stage, "config": config, "inputs": inputs, "code": version or code_version()})
        return f"{stage}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def path_of(self, artifact_id: str) -> Path:
        return self.root / stage_of(artifact_id) / artifact_id

    def get(self, artifact_id: str) -> Artifact | None:
        """The finished, verified artifact with this id, or None. A directory that fails verification is
        quarantined (with a warning), so the id can be built again."""
        path = self.path_of(artifact_id)
        if not path.exists():
            return None
        manifest, problem = read_verified(path)
        if problem:
            self.quarantine(path, problem)
            return None
        return Artifact(artifact_id, path, manifest)

    def quarantine(self, path: Path, problem: str) -> Path:
        """Move a broken artifact out of the way, to ``<root>/.quarantine/``; returns where it went."""
        target = self.root / QUARANTINE / f"{path.name}-{uuid.uuid4().hex[:8]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, target)
        except FileNotFoundError:  # another run moved it first
            return target
        logger.warning("artifact %s is not served: %s; moved to %s and will be built again", path.name, problem, target)
        return target

    def verify_all(self) -> dict[str, str | None]:
        """Every artifact of the store, fully re-hashed: id -> problem (None: sound). Nothing is moved."""
        found = {}
        for path in sorted(self.root.glob("*/*-*")):
            if path.is_dir() and not path.parent.name.startswith("."):
                found[path.name] = verify(path, full=True)
        return found

    def load(self, ref: str | Path) -> Artifact:
        """An artifact by id or by directory path; a clear error if it does not exist or fails verification."""
        path = Path(ref)
        if (path / MANIFEST).is_file():
            manifest, problem = read_verified(path)
            if problem:
                raise CorruptArtifact(f"artifact {path}: {problem}")
            return Artifact(path.name, path, manifest)
        found = self.get(str(ref))
        if found is None:
            raise FileNotFoundError(f"no artifact {ref!r} in store {self.root}")
        return found

    def latest(self, *stages: str) -> Artifact:
        """The newest finished artifact of ``stages`` (by creation time); a clear error if there is none."""
        found = [a for stage in stages for p in (self.root / stage).glob(f"{stage}-*") if (a := self.get(p.name))]
        if not found:
            which = stages[0] if len(stages) == 1 else f"{', '.join(stages[:-1])} or {stages[-1]}"
            raise FileNotFoundError(f"no {which} artifact in store {self.root} yet: run that stage or the pipeline")
        return max(found, key=lambda a: a.built)

    def resolve(self, ref: str | Path, stage: str) -> Artifact:
        """An artifact of ``stage`` by id, directory or ``"latest"``; an error if it is another stage's."""
        art = self.latest(stage) if str(ref) == "latest" else self.load(ref)
        if art.stage != stage:
            raise ValueError(f"artifact {art.id} is a {art.stage} artifact, expected {stage}")
        return art

    def materialize(
        self,
        stage: str,
        config: Any,
        inputs: dict[str, str],
        build: Callable[[Path], dict[str, Any]],
        *,
        seed: int | None = None,
        flow_run_id: str | None = None,
        extra: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> tuple[Artifact, bool]:
        """Return the stage's artifact, building it only if no artifact with the same id exists.

        ``build(tmp_dir)`` writes the outputs into a temporary directory and returns metrics; the
        directory becomes the artifact only once it is complete (rename), so a crash leaves nothing a
        later stage could mistake for a finished artifact. Returns (artifact, reused).
        """
        version = version or code_version()
        artifact_id = self.artifact_id(stage, config, inputs, version)
        existing = self.get(artifact_id)
        if existing is not None:
            return existing, True
        with self.lock(artifact_id):  # another run building the same artifact finishes first; then it is reused
            existing = self.get(artifact_id)
            if existing is not None:
                return existing, True
            final = self.path_of(artifact_id)
            tmp = self.root / ".tmp" / f"{artifact_id}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            started = time.time()
            try:
                metrics = build(tmp)
                files = file_records(tmp)
                manifest = {
                    "id": artifact_id,
                    "stage": stage,
                    "config": config,
                    "inputs": inputs,
                    "code_version": version,
                    "store_format": STORE_FORMAT,
                    "seed": seed,
                    "metrics": metrics,
                    "flow_run_id": flow_run_id,
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "seconds": round(time.time() - started, 2),
                    **(extra or {}),
                    "files": files,
                }
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(tmp, final)
                except OSError:
                    if self.get(artifact_id) is None:  # not a concurrent twin that finished first
                        raise
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise StoreFull(
                        errno.ENOSPC,
                        f"{artifact_id}: no space left on the device of the store {self.root}; nothing of it was "
                        "kept. Free space (or point store.root elsewhere) and run again: finished stages are reused",
                    ) from exc
                raise
            return self.load(final), False

    @contextlib.contextmanager
    def lock(self, artifact_id: str) -> Iterator[None]:
        """An exclusive lock on one artifact id across processes and machines sharing the store (``flock`` on
        ``<root>/.locks/<id>``; NFS v4 and local disks honour it). Waits, saying so, while another run holds it."""
        path = self.root / ".locks" / artifact_id
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.warning("%s is being built by another run on this store: waiting for it", artifact_id)
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
