"""Expected best validation score as a function of the number of trials.

Dodge et al. (2019), "Show Your Work: Improved Reporting of Experimental Results": treat the
sweep's N scores as the distribution of one trial's score; the best of n trials drawn from
it (with replacement) has expectation, with the scores sorted v_(1) <= ... <= v_(N),

    E[max of n] = sum_i v_(i) * ((i/N)^n - ((i-1)/N)^n)

It tells a reader how much of the sweep's best is budget, and whether more trials would help.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["expected_best"]


def _weights(count: int, n: np.ndarray) -> np.ndarray:
    """P(the best of n draws is the i-th smallest of `count` scores), one row per n."""
    i = np.arange(1, count + 1, dtype=float)
    return (i / count) ** n[:, None] - ((i - 1) / count) ** n[:, None]


def expected_best(
    scores: Sequence[float], n: Sequence[int] | None = None, *, maximize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Expected best score of n trials and its standard deviation, for n = 1..N by default.

    For a metric to minimize (a loss) the best is the minimum: the same formula on the
    negated scores.

    Example:
        >>> mean, std = expected_best([0.5, 0.7, 0.9])
        >>> [round(float(m), 4) for m in mean]  # n=1 is the mean; n=2 is 7.1/9
        [0.7, 0.7889, 0.8333]
    """
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or not values.size or not np.all(np.isfinite(values)):
        raise ValueError(f"expected a non-empty list of finite scores, got {scores!r}")
    draws = np.arange(1, values.size + 1) if n is None else np.asarray(n, dtype=float)
    if draws.ndim != 1 or np.any(draws < 1):
        raise ValueError(f"n must be trial counts >= 1, got {n!r}")
    sign = 1.0 if maximize else -1.0
    ordered = np.sort(sign * values)
    weights = _weights(ordered.size, draws)
    mean = weights @ ordered
    variance = np.clip(weights @ ordered**2 - mean**2, 0.0, None)
    return sign * mean, np.sqrt(variance)
