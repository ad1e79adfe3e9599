"""The sweep spec and its search space, validated. May import: sweeps.errors, and experiments' light modules.

Those are the names of datasets and models (`experiments.registry`) and what each task's model
logs (`experiments.tasks`, `experiments.metrics`, `experiments.monitoring`): none imports Keras.
"""

from __future__ import annotations

from sweeps.spec.schema import Spec, builtin_names, load_spec, parse_spec
from sweeps.spec.space import Space, SpaceError

__all__ = ["Space", "SpaceError", "Spec", "builtin_names", "load_spec", "parse_spec"]
