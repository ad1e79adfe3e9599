"""One check that arrays hold numbers and no NaN or infinity, shared by every data source.

A NaN in the inputs or the targets turns the first loss NaN and fails every trial alike; said
once when the data are loaded, with the array, the count and where the first one is, it is
found in seconds.
"""

from __future__ import annotations

import numpy as np

from experiments.errors import DatasetError

__all__ = ["check_finite"]


def check_finite(values: object, what: str) -> np.ndarray:
    """``values`` as an array, or DatasetError when it is not numeric or holds NaN/inf.

    ``what`` names the array in the message (``x_train``, ``y of the first training batch``).
    """
    array = np.asarray(values)
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise DatasetError(f"{what} must hold numbers; got dtype {array.dtype}")
    finite = np.isfinite(array)
    if finite.all():
        return array
    bad = ~finite
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    where = first[0] if len(first) == 1 else first
    raise DatasetError(f"{what} has {int(bad.sum())} NaN or infinite value(s); the first at index {where}")
