"""Arrays that would train to a wrong result are caught when the data are loaded."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from experiments.data import load_dataset
from experiments.errors import DatasetError, DatasetWarning
from experiments.validation import check_class_ids, check_finite, missing_class_ids


def test_check_finite_names_the_array_the_count_and_the_first_index() -> None:
    x = np.zeros((4, 3, 2), dtype="float32")
    x[2, 1, 0] = np.nan
    x[3, 0, 1] = np.inf
    with pytest.raises(
        DatasetError, match=r"^x_train holds 2 NaN or infinite values \(first at index \[2, 1, 0\], nan\)"
    ):
        check_finite("x_train", x)
    x[2, 1, 0] = 0.0
    with pytest.raises(
        DatasetError, match=r"^x_train holds 1 infinite value \(first at index \[3, 0, 1\], inf\)"
    ):
        check_finite("x_train", x)


def test_check_finite_rejects_what_is_not_numbers() -> None:
    with pytest.raises(DatasetError, match="^x_train must hold numbers; got dtype object$"):
        check_finite("x_train", np.array([None, 1]))


def test_check_finite_passes_clean_and_integer_arrays() -> None:
    check_finite("x", np.ones((3, 3)))
    check_finite("y", np.arange(10))
    check_finite("pixels", np.full((2, 2), 255, dtype="uint8"))


def test_missing_class_ids() -> None:
    assert missing_class_ids(np.array([0, 1, 2]), np.array([2, 1])) == []
    assert missing_class_ids(np.array([1, 2, 5])) == [0, 3, 4]
    assert missing_class_ids(np.array([], dtype=int)) == []


def test_gaps_in_class_ids_warn_once_naming_them() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_class_ids({"y_train": np.array([1, 2, 3]), "y_val": np.array([3]), "y_test": None}, "npz:d.npz")
        check_class_ids({"y_train": np.array([0, 1])}, "ok")
    (warning,) = caught
    assert issubclass(warning.category, DatasetWarning)
    assert str(warning.message).startswith(
        "dataset 'npz:d.npz': class id 0 of 0..3 never occur in y_train, y_val"
    )


def test_load_dataset_rejects_nan_in_an_npz(tmp_path) -> None:
    x = np.random.default_rng(0).random((20, 4)).astype("float32")
    x[11, 3] = np.nan
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(20) % 2)
    with pytest.raises(
        DatasetError, match=r"dataset 'npz:.*d.npz': x_train holds 1 NaN value \(first at index \[11, 3\]"
    ):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")


def test_load_dataset_warns_about_one_based_labels(tmp_path) -> None:
    x = np.random.default_rng(0).random((20, 4)).astype("float32")
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(20) % 3 + 1)
    with pytest.warns(DatasetWarning, match="class id 0 of 0..3 never occur"):
        data = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.num_classes == 4
