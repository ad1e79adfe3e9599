"""A sweep remembers what it searches: its parent run's spec.yaml.

Re-running a sweep under the same name continues it, which is only right while a trial
still means the same thing: the same task, data, model, training, objective, space and engine.
A changed search stops the command before either store is written, with the differences
field by field; `budget` and `description` may change freely (a bigger budget is how a
sweep is extended). `restart` sets the old sweep aside, kept whole, and starts afresh.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sweeps.errors import SpecChanged, SpecError
from sweeps.spec.schema import Spec, parse_spec

__all__ = ["Change", "archived_name", "check_memory", "restart_sweep", "spec_changes"]

SEARCH_SECTIONS = ("task", "dataset", "model", "train", "objective", "space", "engine")
# Fields inside those sections that do not change what a trial means.
NEUTRAL_FIELDS = frozenset({"train.verbose"})


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Change:
    """One field of the search that differs: its dotted path, the value before and after."""

    field: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.before)} -> {_show(self.after)}"


def _show(value: Any) -> str:
    """A value as it would read in the YAML spec (flow style)."""
    if value is MISSING:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _diff(path: str, before: Any, after: Any) -> list[Change]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        changes: list[Change] = []
        for key in [*before, *(k for k in after if k not in before)]:
            changes += _diff(f"{path}.{key}", before.get(key, MISSING), after.get(key, MISSING))
        return changes
    if before == after and type(before) is type(after):
        return []
    if isinstance(before, int | float) and isinstance(after, int | float) and not isinstance(before, bool):
        if not isinstance(after, bool) and float(before) == float(after):
            return []  # 1 and 1.0 in a range bound are the same search
    return [] if path in NEUTRAL_FIELDS else [Change(path, before, after)]


def spec_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """The search-relevant differences between two specs in their YAML shape (`Spec.raw()`)."""
    changes: list[Change] = []
    for section in SEARCH_SECTIONS:
        changes += _diff(section, before.get(section, MISSING), after.get(section, MISSING))
    return changes


def _stored_raw(spec_yaml: str, label: str) -> dict[str, Any]:
    """A stored spec in the shape `Spec.raw()` gives (defaults filled in by today's schema);
    as stored when today's schema no longer reads it."""
    data = yaml.safe_load(spec_yaml) or {}
    try:
        return parse_spec(data, source=label).raw()
    except SpecError:
        return data if isinstance(data, dict) else {}


def check_memory(spec: Spec, tracking_uri: str, spec_label: str = "SPEC") -> None:
    """Raise `SpecChanged` when the sweep's parent run was started with another search.

    Reads only; a sweep with no parent run yet (or one that recorded no spec) is new.
    """
    from tracking.memory import stored_parent

    parent = stored_parent(tracking_uri, spec.name, spec.engine.name)
    if parent is None or parent.spec_yaml is None:
        return
    changes = spec_changes(_stored_raw(parent.spec_yaml, "stored"), spec.raw())
    if not changes:
        return
    listed = "\n".join(f"  {change}" for change in changes)
    raise SpecChanged(
        f"sweep {spec.name!r} ({spec.engine.name}) was started with a different search than this spec; "
        f"changed since (against spec.yaml of its parent run {parent.run_id} in {tracking_uri}):\n"
        f"{listed}\n"
        "nothing was written. Give the spec a new `name` to run it as a sweep of its own, or "
        f"`sweep run {spec_label} --restart` to start this sweep again from scratch (the old parent "
        "run and its study are kept, renamed NAME@TIME). budget and description may change freely."
    )


def archived_name(name: str, taken: set[str]) -> str:
    """`name@YYYYmmdd-HHMMSS` (UTC): never a spec's name, which cannot hold '@'."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate, n = f"{name}@{stamp}", 1
    while candidate in taken:
        n += 1
        candidate = f"{name}@{stamp}-{n}"
    return candidate


def restart_sweep(spec: Spec, tracking_uri: str, storage: str | None, local_dir: Path) -> str | None:
    """Set the sweep's engine state and parent run aside under one archived name, so the sweep
    starts from scratch; returns that name, or None when there was nothing to set aside.

    The engine's state goes first: were the MLflow step to fail, the next run would still
    find the old parent and stop on the changed spec instead of mixing two searches.
    """
    from sweeps.engines.archive import archive_engine_state, archived_names
    from tracking.memory import archive_parent, stored_parent

    parent = stored_parent(tracking_uri, spec.name, spec.engine.name)
    name = archived_name(spec.name, archived_names(spec, storage, local_dir))
    kept = archive_engine_state(spec, storage, local_dir, name)
    if parent is not None:
        archive_parent(tracking_uri, parent.run_id, name)
    return name if kept or parent is not None else None
