"""An engine's state set aside, kept whole, when a sweep is started again from scratch.

Optuna: the study is copied to the archived name in the same storage (trials, attributes,
directions), then deleted under its own name, so the sweep's next study starts empty.
KerasTuner: the project folder is renamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeps.spec.schema import Spec

__all__ = ["archive_engine_state", "archived_names"]


def archived_names(spec: Spec, storage: str | None, local_dir: Path) -> set[str]:
    """Names already taken where the engine keeps its state (so an archive never overwrites)."""
    if spec.engine.name == "kerastuner":
        folder = local_dir / "kerastuner"
        return {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    import optuna

    from sweeps.engines.optuna_engine import open_storage

    return set(optuna.study.get_all_study_names(open_storage(storage, local_dir)))


def archive_engine_state(spec: Spec, storage: str | None, local_dir: Path, archived: str) -> bool:
    """Move the sweep's study (or KerasTuner project) to `archived`; False if it had none."""
    if spec.engine.name == "kerastuner":
        project = local_dir / "kerastuner" / spec.name
        if not project.exists():
            return False
        project.rename(project.with_name(archived))
        return True
    import optuna

    from sweeps.engines.optuna_engine import open_storage

    opened = open_storage(storage, local_dir)
    if spec.name not in optuna.study.get_all_study_names(opened):
        return False
    optuna.copy_study(
        from_study_name=spec.name, from_storage=opened, to_storage=opened, to_study_name=archived
    )
    optuna.delete_study(study_name=spec.name, storage=opened)
    return True
