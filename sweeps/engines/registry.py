"""The engines by name: the one module that imports both, and which neither imports back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeps.engines.base import Engine
    from sweeps.spec.schema import Spec


def make_engine(spec: Spec, storage: str | None, local_dir: Path) -> Engine:
    """The engine the spec names, opened on its storage (resuming an earlier run of the sweep)."""
    if spec.engine.name == "optuna":
        from sweeps.engines.optuna_engine import OptunaEngine

        return OptunaEngine(spec, storage, local_dir)
    if spec.engine.name == "kerastuner":
        from sweeps.engines.kerastuner_engine import KerasTunerEngine

        return KerasTunerEngine(spec, storage, local_dir)
    raise ValueError(f"engine.name: unknown engine {spec.engine.name!r}")
