"""Write `constraints.txt`: the exact versions of everything sweeplab[test,dev] installs, read
from an environment where the suite passed.

README's commands install with `pip install -c constraints.txt ...`, so a fresh machine gets the
versions the suite was run with, while pyproject.toml keeps only lower bounds. To move the lock
forward: a fresh venv, `pip install ".[test,dev]"` (the newest versions), the full suite green,
then `python tools/refresh_lock.py` from that venv. Only the project's own requirements and
what they pull in are written (a profiler installed beside them is not), and never the project
itself or the optional Keras backends (CI installs PyTorch's CPU build on its own).

    python tools/refresh_lock.py            # writes constraints.txt at the repository root
    python tools/refresh_lock.py --check    # exit 1 if constraints.txt differs from this venv
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"
EXTRAS = ("test", "dev", "dashboard")
HEADER = (
    "# The exact versions the test suite passed with (README's commands install from this file).\n"
    "# Written by tools/refresh_lock.py; pyproject.toml holds the lower bounds.\n"
)


def _wanted(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras or {""})


def closure(extras: tuple[str, ...] = EXTRAS) -> dict[str, str]:
    """Canonical name -> installed version of every distribution sweeplab[extras] needs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    own = canonicalize_name(project["name"])
    roots = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        roots += [Requirement(r) for r in project["optional-dependencies"].get(extra, [])]
    found: dict[str, str] = {}
    pending = [(r, set(r.extras)) for r in roots]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if name == own:
            continue
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError:
            sys.exit(f"{requirement.name} is not installed here: pip install '.[{','.join(extras)}]' first")
        if name in found and not extras:
            continue
        found[name] = dist.version
        for line in dist.requires or []:
            child = Requirement(line)
            if _wanted(child, extras):
                pending.append((child, set(child.extras)))
    return dict(sorted(found.items()))


def render(pins: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in pins.items())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = render(closure())
    if args.check:
        if not LOCK.exists() or LOCK.read_text() != text:
            sys.exit("constraints.txt does not match this environment")
        print("constraints.txt matches this environment")
        return
    LOCK.write_text(text)
    print(f"wrote {LOCK.relative_to(ROOT)} ({text.count('==')} pins)")


if __name__ == "__main__":
    main()
