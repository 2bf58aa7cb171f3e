"""The lock files pin every dependency pyproject names, each with a hash, within pyproject's floors."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def locked(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, hashes) for every requirement in a pip-style lock file."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            match = PIN.match(stripped)
            assert match, f"{path.name}: not an exact pin: {line!r}"
            current = canonicalize_name(match.group(1))
            entries[current] = (Version(match.group(3)), [])
        for digest in re.findall(r"--hash=sha256:([0-9a-f]{64})", stripped):
            assert current is not None
            entries[current][1].append(digest)
    return entries


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    if extra is not None:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_every_locked_requirement_is_an_exact_pin_with_a_hash() -> None:
    for name in ("prod.lock", "test.lock"):
        entries = locked(ROOT / "requirements" / name)
        assert entries, name
        unhashed = [pkg for pkg, (_, hashes) in entries.items() if not hashes]
        assert not unhashed, f"{name}: no --hash for {unhashed}"


def test_the_locks_cover_every_dependency_of_pyproject_within_its_floor() -> None:
    for name, extra in (("prod.lock", None), ("test.lock", "test")):
        entries = locked(ROOT / "requirements" / name)
        for req in requirements(extra):
            key = canonicalize_name(req.name)
            assert key in entries, f"{name} does not lock {req.name} (pyproject names it)"
            version, _ = entries[key]
            assert req.specifier.contains(version, prereleases=True), f"{name}: {key}=={version} vs {req}"


def test_every_floor_is_a_version_not_just_a_major() -> None:
    """`>=6` admits whatever 6.0 was; a floor is the version the suite passed with."""
    for req in requirements("test"):
        specs = list(req.specifier)
        assert specs and all(s.operator == ">=" for s in specs), req
        assert all(len(Version(s.version).release) >= 2 for s in specs), f"{req}: floor too coarse"


def test_ci_installs_from_the_lock_with_hashes_required() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "--require-hashes -r requirements/test.lock" in script
    assert "--no-deps -e ." in script
    assert 'pip install -q -e ".[test]"' not in script
