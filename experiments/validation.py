"""Checks on loaded arrays that catch data which would train silently to a wrong result.

One NaN pixel turns every weight it touches into NaN, and the sweep then "completes" at
chance level; labels 1..10 instead of 0..9 give the model an output that is never trained.
Both are cheap to find once, when the data are loaded, and expensive to find afterwards.

Example:
    >>> import numpy as np
    >>> check_finite("x_train", np.array([[0.0, 1.0], [np.nan, 2.0]]))
    Traceback (most recent call last):
    ...
    experiments.errors.DatasetError: x_train holds 1 NaN value (first at index [1, 0]); ...
    >>> missing_class_ids(np.array([0, 1, 3]))
    [2]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from experiments.errors import DatasetError, DatasetWarning

__all__ = ["check_arrays", "check_class_ids", "check_finite", "missing_class_ids"]


def check_finite(name: str, values: object) -> np.ndarray:
    """``values`` as an array, or DatasetError when it holds no numbers or NaN/infinite ones,
    naming the array, how many there are and the index of the first one. Integer and boolean
    arrays cannot hold either and are passed without a scan."""
    array = np.asarray(values)
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise DatasetError(f"{name} must hold numbers; got dtype {array.dtype}")
    nan = np.isnan(array)
    bad = nan | np.isinf(array)
    count = int(np.count_nonzero(bad))
    if not count:
        return array
    first = np.unravel_index(int(np.argmax(bad)), array.shape)
    index = ", ".join(str(int(i)) for i in first)
    value = array[first]
    n_nan = int(np.count_nonzero(nan))
    what = " or ".join(k for k, n in (("NaN", n_nan), ("infinite", count - n_nan)) if n)
    raise DatasetError(
        f"{name} holds {count} {what} value{'s' if count > 1 else ''} (first at index [{index}], "
        f"{value}); training on it gives NaN losses or silently wrong results: clean or drop those "
        "samples"
    )


def missing_class_ids(*labels: np.ndarray) -> list[int]:
    """The ids in 0..max that no label array uses (integer class ids, any number of splits)."""
    present = [np.unique(y) for y in labels if y is not None and np.asarray(y).size]
    if not present:
        return []
    used = np.unique(np.concatenate(present))
    return sorted(set(range(int(used.max()) + 1)) - {int(i) for i in used})


def check_class_ids(labels: Mapping[str, np.ndarray | None], dataset: str) -> None:
    """Warn (once, as a `DatasetWarning`) when the class ids are not the contiguous 0..C-1:
    the model gets one output per id up to the largest, and the missing ones are never
    trained, which is usually a 1-based or filtered label set."""
    arrays = [y for y in labels.values() if y is not None]
    missing = missing_class_ids(*arrays)
    if not missing:
        return
    top = max(int(np.max(y)) for y in arrays if np.asarray(y).size)
    shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
    warnings.warn(
        DatasetWarning(
            f"dataset {dataset!r}: class id{'s' if len(missing) > 1 else ''} {shown} of 0..{top} "
            f"never occur in {', '.join(k for k, v in labels.items() if v is not None)}; the model "
            f"gets {top + 1} outputs and {len(missing)} of them are never trained (labels should be "
            f"0..C-1)"
        ),
        stacklevel=3,
    )


def check_arrays(dataset: str, arrays: Mapping[str, np.ndarray | None]) -> None:
    """`check_finite` on each array a source gave (None: the source has no such split)."""
    for key, array in arrays.items():
        if array is not None:
            check_finite(f"dataset {dataset!r}: {key}", array)
