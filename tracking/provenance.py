"""Where a run came from: package versions and the git commit, recorded as run tags.

A report may be written on another machine, long after the sweep; it can only say what the
sweep ran with if the sweep wrote it down when it started.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tracking import tags

PACKAGES = (
    "sweeplab",
    "tensorflow",
    "keras",
    "keras-tuner",
    "torch",
    "jax",
    "mlflow",
    "optuna",
    "numpy",
    "scikit-learn",
)


def package_versions() -> dict[str, str]:
    """Python's and the installed packages' versions (packages that are absent are left out)."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(folder: Path | None = None) -> tuple[str, bool] | None:
    """(commit, dirty) of the repository holding `folder` (default: the working directory, then
    sweeplab's own source); None outside any repository or without git."""
    candidates = [folder] if folder is not None else [Path.cwd(), Path(__file__).resolve().parent]
    for candidate in candidates:
        commit = _git(candidate, "rev-parse", "HEAD")
        if commit:
            status = _git(candidate, "status", "--porcelain", "--untracked-files=no")
            return commit, bool(status)
    return None


def provenance_tags() -> dict[str, str]:
    """Run tags that say what ran: versions as JSON, the git commit and whether it was dirty."""
    out = {tags.VERSIONS: json.dumps(package_versions())}
    state = git_state()
    if state is not None:
        out[tags.GIT_COMMIT] = state[0]
        out[tags.GIT_DIRTY] = str(state[1]).lower()
    return out
