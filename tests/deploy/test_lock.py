"""The hash-locked requirements agree with pyproject.toml: every range is pinned, satisfied and hashed (scripts/lock)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")

#: Which lock holds which part of pyproject.toml: (lock file, the extras it covers beside the core dependencies).
LOCKS = {
    "runtime.txt": ("postgres",),
    "mock.txt": ("mock",),
    "dev.txt": ("dev", "mock", "postgres"),
}


def direct_pins(path: Path) -> set[str]:
    """Names the lock says it holds because pyproject.toml asks for them (`# via flagsync (pyproject.toml)`)."""
    direct: set[str] = set()
    name: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match["name"])
        elif name is not None and line.strip().startswith("#") and "flagsync (pyproject.toml)" in line:
            direct.add(name)
    return direct


def parse_lock(path: Path) -> dict[str, tuple[Version, int]]:
    """Name -> (pinned version, number of hashes) for every pin in a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[Version, int]] = {}
    name: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match["name"])
            assert name not in pins, f"{path.name} pins {name} twice"
            pins[name] = (Version(match["version"]), 0)
        elif name is not None and HASH.search(line):
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def project() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return data


def requirements_for(extras: tuple[str, ...]) -> list[Requirement]:
    """The core dependencies and those of `extras`, leaving out flagsync's references to its own extras."""
    meta = project()
    core = list(meta["dependencies"])  # type: ignore[call-overload]
    optional: dict[str, list[str]] = meta["optional-dependencies"]  # type: ignore[assignment]
    wanted = [Requirement(text) for text in core + [t for extra in extras for t in optional[extra]]]
    return [r for r in wanted if canonicalize_name(r.name) != "flagsync"]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_requirement_is_pinned_within_its_range(lock: str) -> None:
    """Each dependency pyproject.toml names for this lock (extras included) is pinned there, inside its range."""
    pins = parse_lock(REQUIREMENTS / lock)
    problems = []
    for requirement in requirements_for(LOCKS[lock]):
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement} is not pinned")
        elif not requirement.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{requirement} is pinned at {pins[name][0]}")
    assert not problems, f"requirements/{lock} has drifted from pyproject.toml (run scripts/lock): {problems}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_no_pin_is_left_from_a_removed_requirement(lock: str) -> None:
    """Every package the lock holds for pyproject.toml's sake is still one pyproject.toml asks for."""
    wanted = {canonicalize_name(r.name) for r in requirements_for(LOCKS[lock])}
    direct = direct_pins(REQUIREMENTS / lock)
    assert direct, f"requirements/{lock} names no direct requirement: has uv changed its annotations?"
    assert direct <= wanted, f"requirements/{lock} still pins {sorted(direct - wanted)} (run scripts/lock)"


@pytest.mark.parametrize("lock", ["build.txt", "runtime.txt", "mock.txt", "dev.txt"])
def test_every_pin_carries_hashes(lock: str) -> None:
    """`pip install --require-hashes` needs a hash for every pinned package."""
    pins = parse_lock(REQUIREMENTS / lock)
    assert pins, f"requirements/{lock} pins nothing"
    assert not [name for name, (_, hashes) in pins.items() if hashes == 0]


def test_the_build_lock_satisfies_the_build_system() -> None:
    """The locked setuptools is one pyproject.toml's [build-system] accepts (the image builds the wheel with it)."""
    build_requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
    pins = parse_lock(REQUIREMENTS / "build.txt")
    for text in build_requires:
        requirement = Requirement(text)
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)][0])


def test_ci_runs_the_versions_that_ship() -> None:
    """Every package of the runtime, mock and build locks has the same version in the dev lock CI installs."""
    dev = parse_lock(REQUIREMENTS / "dev.txt")
    differing = {
        (lock, name): (version, dev.get(name, (None, 0))[0])
        for lock in ("runtime.txt", "mock.txt", "build.txt")
        for name, (version, _) in parse_lock(REQUIREMENTS / lock).items()
        if dev.get(name, (None, 0))[0] != version
    }
    assert not differing


def test_the_image_and_ci_install_from_the_locks() -> None:
    """The Dockerfile, the mock's Dockerfile and scripts/test install with --require-hashes from the lock files."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --require-hashes --only-binary :all: -r requirements/runtime.txt" in dockerfile
    assert "pip install --require-hashes -r requirements/build.txt" in dockerfile
    assert "pip install --no-deps /wheels/*.whl" in dockerfile
    mock = (ROOT / "deploy/mock/Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes --only-binary :all: -r requirements/mock.txt -r requirements/build.txt" in mock
    test_script = (ROOT / "scripts/test").read_text(encoding="utf-8")
    assert "pip install --quiet --require-hashes -r requirements/dev.txt" in test_script
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in test_script
