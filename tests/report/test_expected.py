"""The expected-best-score curve (Dodge et al., 2019) against hand computations."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from sweeps.report.expected import expected_best


def test_known_scores_by_hand() -> None:
    # N = 3 scores 0.5 < 0.7 < 0.9; P(best of n is the i-th) = (i/3)^n - ((i-1)/3)^n.
    mean, std = expected_best([0.9, 0.5, 0.7])
    assert mean[0] == pytest.approx(0.7)  # n=1: (0.5 + 0.7 + 0.9) / 3
    assert mean[1] == pytest.approx((0.5 * 1 + 0.7 * 3 + 0.9 * 5) / 9)  # weights 1/9, 3/9, 5/9
    assert mean[2] == pytest.approx((0.5 * 1 + 0.7 * 7 + 0.9 * 19) / 27)  # 1/27, 7/27, 19/27
    assert std[0] == pytest.approx(np.std([0.5, 0.7, 0.9]))


def test_matches_enumerating_every_draw() -> None:
    """With replacement, best of n: average the max over all N^n equally likely draws (ties too)."""
    scores = [Fraction(2, 10), Fraction(5, 10), Fraction(5, 10), Fraction(9, 10)]
    mean, std = expected_best([float(s) for s in scores], n=[1, 2, 3, 4])
    for n, (got_mean, got_std) in enumerate(zip(mean, std, strict=True), start=1):
        maxima = [max(draw) for draw in itertools.product(scores, repeat=n)]
        exact = sum(maxima) / len(maxima)
        variance = sum((m - exact) ** 2 for m in maxima) / len(maxima)
        assert got_mean == pytest.approx(float(exact), abs=1e-12)
        assert got_std == pytest.approx(float(variance) ** 0.5, abs=1e-12)
    assert mean[1] == pytest.approx(10.5 / 16)  # by hand: (0.2*1 + 0.5*3 + 0.5*5 + 0.9*7) / 16


def test_a_loss_expects_the_minimum() -> None:
    mean, _ = expected_best([0.5, 0.7, 0.9], maximize=False)
    assert mean[0] == pytest.approx(0.7)
    assert mean[1] == pytest.approx((0.9 * 1 + 0.7 * 3 + 0.5 * 5) / 9)


def test_grows_with_the_budget_towards_the_best() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.5, 0.9, size=30)
    mean, _ = expected_best(scores, n=range(1, 201))
    assert np.all(np.diff(mean) >= -1e-12)
    assert mean[0] == pytest.approx(scores.mean()) and mean[-1] == pytest.approx(scores.max(), abs=1e-3)


@pytest.mark.parametrize(("scores", "n"), [([], None), ([0.5, float("nan")], None), ([0.5], [0])])
def test_rejects_what_has_no_expectation(scores: list[float], n: list[int] | None) -> None:
    with pytest.raises(ValueError):
        expected_best(scores, n)
