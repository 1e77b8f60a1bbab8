"""requirements.lock is what `make install` installs (`make lock` refreshes it): every locked package is in the venv
at exactly its locked version, the lock still meets pyproject.toml's ranges, and its torch is the local CPU build."""

import importlib.metadata
import tomllib
from collections.abc import Mapping
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
EXTRAS = ("dev", "pools", "postgres")  # what `make test` installs, and what `make lock` locks


def read_lock(path: Path) -> dict[str, str]:
    """Name -> pinned version of each requirement whose marker holds here (hashes, comments and options skipped)."""
    locked = {}
    for line in path.read_text().splitlines():
        if not line or line[0] in "#- \t":
            continue
        requirement = Requirement(line.rstrip(" \\"))
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (pin,) = requirement.specifier
        assert pin.operator == "==", f"{path.name}: {line!r} is not an exact pin"
        locked[canonicalize_name(requirement.name)] = pin.version
    return locked


def installed_versions() -> dict[str, str]:
    """Name -> version of every distribution the running interpreter sees."""
    return {canonicalize_name(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()}


def lock_mismatches(locked: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """Each locked package that is missing or at another version ('2.13.0' is not '2.13.0+cpu')."""
    problems = []
    for name, version in sorted(locked.items()):
        if name not in installed:
            problems.append(f"{name}: locked {version}, not installed")
        elif Version(installed[name]) != Version(version):
            problems.append(f"{name}: locked {version}, installed {installed[name]}")
    return problems


def pyproject_mismatches(pyproject: Path, locked: Mapping[str, str]) -> list[str]:
    """Each requirement of pyproject.toml (with the locked extras) that the lock lacks or pins outside its range."""
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in EXTRAS:
        wanted += project["optional-dependencies"][extra]
    problems = []
    for line in wanted:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{name}: {pyproject.name} asks for {requirement}, {LOCK.name} has none")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{name}: {pyproject.name} asks for {requirement}, {LOCK.name} pins {locked[name]}")
    return problems


HELP = "the venv differs from requirements.lock (`rm -r .venv && make test` installs it anew; `make lock` refreshes it)"


def test_every_locked_package_is_installed_at_its_locked_version():
    problems = lock_mismatches(read_lock(LOCK), installed_versions())
    assert not problems, HELP + ":\n  " + "\n  ".join(problems)


def test_the_lock_meets_pyproject():
    problems = pyproject_mismatches(PYPROJECT, read_lock(LOCK))
    stale = "requirements.lock is out of date with pyproject.toml: refresh it (`make lock`)"
    assert not problems, stale + ":\n  " + "\n  ".join(problems)


def test_the_lock_pins_the_cpu_torch_and_no_cuda_package():
    locked = read_lock(LOCK)
    assert locked["torch"].endswith("+cpu"), locked["torch"]
    cuda = [name for name in locked if name.startswith(("nvidia-", "cuda-", "triton"))]
    assert not cuda, cuda


def test_a_doctored_lock_names_each_mismatched_package(tmp_path):
    """The check really compares: a lock that differs from the venv by one version, a local label or a package fails."""
    text, locked, installed = LOCK.read_text(), read_lock(LOCK), installed_versions()
    torch, accelerate = locked["torch"], locked["accelerate"]
    text = text.replace(f"\ntorch=={torch} ", f"\ntorch=={Version(torch).public} ")  # the CUDA build's version
    text = text.replace(f"\naccelerate=={accelerate} ", "\naccelerate==0.0.1 ")
    doctored = tmp_path / "requirements.lock"
    doctored.write_text(text + "not-a-real-package-xyz==1.0\n")
    already = lock_mismatches(read_lock(LOCK), installed)  # the first test's business, not this one's
    problems = [problem for problem in lock_mismatches(read_lock(doctored), installed) if problem not in already]
    assert problems == [
        f"accelerate: locked 0.0.1, installed {installed['accelerate']}",
        "not-a-real-package-xyz: locked 1.0, not installed",
        f"torch: locked {Version(torch).public}, installed {installed['torch']}",
    ]


def test_a_doctored_pyproject_names_each_requirement_the_lock_misses(tmp_path):
    text = PYPROJECT.read_text()
    doctored = tmp_path / "pyproject.toml"
    doctored.write_text(
        text.replace('"trl>=1.16,<1.17"', '"trl>=1.17,<1.18"').replace(
            '"pyyaml>=6",', '"pyyaml>=6",\n    "not-a-real-package-xyz>=1",'
        )
    )
    problems = pyproject_mismatches(doctored, read_lock(LOCK))
    assert [problem.split(":")[0] for problem in problems] == ["trl", "not-a-real-package-xyz"], problems
    assert pyproject_mismatches(PYPROJECT, read_lock(LOCK)) == []
