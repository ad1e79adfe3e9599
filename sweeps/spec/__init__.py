"""The sweep spec and its search space, validated. May import: sweeps.errors, experiments.registry."""

from __future__ import annotations

from sweeps.spec.schema import Spec, builtin_names, load_spec, parse_spec
from sweeps.spec.space import Space, SpaceError

__all__ = ["Space", "SpaceError", "Spec", "builtin_names", "load_spec", "parse_spec"]
