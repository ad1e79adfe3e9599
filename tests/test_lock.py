"""constraints.txt, the lock README's commands install from, agrees with pyproject.toml and with
the environment the suite runs in."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in ("test", "dev", "dashboard"):
        lines += project["optional-dependencies"][extra]
    return [r for r in map(Requirement, lines) if canonicalize_name(r.name) != "sweeplab"]


def test_every_declared_requirement_is_pinned_within_its_bounds() -> None:
    pins = _pins()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {requirement}"
        )


def test_this_environment_is_the_lock() -> None:
    """The suite runs on the versions README installs: refresh the lock (tools/refresh_lock.py)
    from an environment where it passed, never by hand."""
    spec = importlib.util.spec_from_file_location("refresh_lock", ROOT / "tools" / "refresh_lock.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    installed = tool.closure(("test", "dashboard"))  # what README's test command installs
    pins = {name: str(version) for name, version in _pins().items()}
    drift = {n: (pins.get(n), v) for n, v in installed.items() if pins.get(n) != v}
    assert not drift, f"installed versions differ from constraints.txt (locked, installed): {drift}"
