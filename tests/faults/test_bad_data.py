"""Broken data ends `sweep run` before either store exists; suspicious labels warn once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.conftest import sweep_cli
from tests.faults.conftest import TINY, journal_study, write_spec


def digits_npz(
    path: Path, *, labels_from: int = 0, poison: tuple[str, tuple[int, ...], float] | None = None
) -> None:
    bunch = load_digits()
    arrays = {
        "x_train": (bunch.images[:400] / 16).astype("float32"),
        "y_train": bunch.target[:400] + labels_from,
        "x_val": (bunch.images[400:500] / 16).astype("float32"),
        "y_val": bunch.target[400:500] + labels_from,
    }
    if poison is not None:
        key, index, value = poison
        arrays[key] = arrays[key].astype("float64")
        arrays[key][index] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("poison", "expected"),
    [
        (("x_train", (3, 2, 2), np.nan), "x_train holds 1 NaN value (first at index [3, 2, 2]"),
        (("x_val", (7, 0, 1), np.inf), "x_val holds 1 infinite value (first at index [7, 0, 1]"),
        (("y_train", (5,), np.nan), "y_train holds 1 NaN value (first at index [5]"),
    ],
)
def test_nan_or_infinity_in_the_data_exits_2_and_writes_nothing(workdir: Path, poison, expected: str) -> None:
    digits_npz(workdir / "data.npz", poison=poison)
    write_spec(workdir, {**TINY, "dataset": {"name": "npz:data.npz"}})
    result = sweep_cli("run", "spec.yaml", cwd=workdir, timeout=60)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: dataset 'npz:data.npz': ") and expected in line
    assert sorted(p.name for p in workdir.iterdir()) == ["data.npz", "spec.yaml"]  # no store touched


@pytest.mark.slow
def test_labels_with_gaps_warn_once_on_the_console_with_workers(tracking_uri: str, workdir: Path) -> None:
    digits_npz(workdir / "data.npz", labels_from=1)  # 1..10: class 0 never occurs
    write_spec(workdir, {**TINY, "dataset": {"name": "npz:data.npz"}, "budget": {"trials": 2}})
    result = sweep_cli("run", "spec.yaml", "--workers", "2", "--tracking-uri", tracking_uri, cwd=workdir)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert "oneDNN" not in result.stderr and "cuInit" not in result.stderr and "absl" not in result.stderr
    assert "class id 0 of 0..10 never occur" in warnings[0] and "11 outputs" in warnings[0]
    assert len(journal_study(workdir / "optuna.journal", "tiny").trials) == 2
    for log in (workdir / ".sweeplab" / "tiny").glob("worker-*.log"):  # workers are quiet too
        text = log.read_text()
        assert "oneDNN" not in text and "cuda drivers" not in text and "absl" not in text, text
