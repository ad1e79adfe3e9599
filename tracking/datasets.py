"""The data a sweep trains and validates on, as MLflow dataset inputs of every trial run.

Built once per sweep (the digest reads every byte of the arrays) and logged with each trial's
run in one `log_inputs` call on the tracker's writer thread, so the UI's Dataset column and
filter show which data each trial saw, with the context (`training`, `validation`) MLflow's
`log_input` gives them.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlflow.entities import Dataset as DatasetEntity
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

DIGEST_LENGTH = 12  # hex characters; MLflow's own digests are 8
# A unique constraint met by a concurrent insert: SQLite's, PostgreSQL's and MySQL's wording.
_DUPLICATE = re.compile(r"UNIQUE constraint failed|duplicate key value|Duplicate entry", re.IGNORECASE)


def log_inputs(client: Any, run_id: str, inputs: list[DatasetInput]) -> None:
    """``client.log_inputs``, safe when several workers log the sweep's datasets at once.

    MLflow looks a dataset up and then inserts it, so two runs logging a new dataset together
    can both insert it and one meets the unique constraint (seen with four workers on SQLite).
    The row exists by then, so the second call only links it to the run.
    """
    try:
        client.log_inputs(run_id, inputs)
    except Exception as exc:
        if not _DUPLICATE.search(str(exc)):
            raise
        client.log_inputs(run_id, inputs)


@dataclass(frozen=True)
class Split:
    """One split's arrays, with the context MLflow records it under."""

    context: str  # training | validation
    x: np.ndarray
    y: np.ndarray


def digest(x: np.ndarray, y: np.ndarray) -> str:
    """A fingerprint of the whole split: shapes, dtypes and every value (MLflow's own digest
    reads only the first 10,000 values, so two subsets of one dataset could share it)."""
    h = hashlib.sha256()  # about 0.3 s for CIFAR-10's 600 MB of float32 training images
    for array in (x, y):
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()[:DIGEST_LENGTH]


def dataset_inputs(name: str, source: str, splits: list[Split]) -> list[DatasetInput]:
    """MLflow dataset inputs for the splits: name, digest, source, schema and profile, as
    `mlflow.data.from_numpy(...)` describes arrays, and the context as an input tag."""
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():  # a local path matches two equivalent source classes
        warnings.simplefilter("ignore", UserWarning)
        try:
            resolved = resolve_dataset_source(source)
        except MlflowException:  # not a URI MLflow knows (e.g. code that makes the data)
            resolved = CodeDatasetSource({"source": source})
    inputs = []
    for split in splits:
        dataset = mlflow.data.from_numpy(
            split.x, targets=split.y, source=resolved, name=name, digest=digest(split.x, split.y)
        )
        fields = dataset.to_dict()
        entity = DatasetEntity(
            name=fields["name"],
            digest=fields["digest"],
            source_type=fields["source_type"],
            source=fields["source"],
            schema=fields.get("schema"),
            profile=fields.get("profile"),
        )
        inputs.append(DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, split.context)]))
    return inputs
