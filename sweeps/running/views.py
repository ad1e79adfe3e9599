"""What tracking is told of a sweep so the MLflow UI shows it well: the view of its trials (from
the spec) and the data its trials train and validate on (from the loaded dataset)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweeps.spec.space import Range

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput

    from experiments.data import Data
    from sweeps.spec.schema import Spec
    from tracking.dashboard import SweepView

X_PARAM = "learning_rate"  # what the objective is plotted against, when it is searched


def sweep_view(spec: Spec) -> SweepView:
    """The spec's objective, its direction and the searched parameters, for the UI."""
    from tracking.dashboard import SweepView

    space = spec.space
    searched = tuple(space.searched)
    ranges = [name for name in searched if any(isinstance(p, Range) for p in space.variants(name))]
    x_param = X_PARAM if X_PARAM in ranges else (ranges[0] if ranges else None)
    return SweepView(
        sweep=spec.name,
        objective=spec.objective.metric,
        maximize=spec.objective.direction == "maximize",
        searched=searched,
        x_param=x_param,
        description=spec.description,
        dataset=spec.dataset.name,
        engine=spec.engine.name,
    )


def dataset_name(name: str) -> str:
    """A short dataset name for the UI: a built-in's name, an npz file's name."""
    from experiments.registry import NPZ_PREFIX, is_npz

    return name[len(NPZ_PREFIX) :].rsplit("/", 1)[-1] if is_npz(name) else name


def training_inputs(spec: Spec, data: Data) -> list[DatasetInput]:
    """The training and validation splits as MLflow dataset inputs (digests computed here, once);
    none for streams, which are never read whole."""
    from experiments.data import Dataset
    from experiments.sources import source_uri
    from tracking.datasets import Split, dataset_inputs

    if not isinstance(data, Dataset):
        return []

    splits = [Split("training", data.x_train, data.y_train), Split("validation", data.x_val, data.y_val)]
    return dataset_inputs(dataset_name(spec.dataset.name), source_uri(spec.dataset.name), splits)
